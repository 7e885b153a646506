"""The configuration reference: docs/configuration.md is current, lists every key, and what it says is true."""

from __future__ import annotations

import difflib
import os
import re
import sys
import typing
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from cli_support import Cli, make_cli
from pydantic import BaseModel

from campaignkit.core import ConfigurationError
from campaignkit.core.cli.config import BUNDLED_ORIGIN
from campaignkit.core.plugins.config_reference import bundled_components, render_reference
from campaignkit.core.plugins.manager import DEFAULT_PLUGINS, build_plugin_manager, collect_registrations, config_key
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings, load_settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
CELL = re.compile(r"(?<!\\)\|")  # a table cell boundary: a pipe not escaped with a backslash
KEY = "MLDYSeG9-nALW46rABOOBf51elRDvAwGKW2TTFIjV7UnH03M"  # random, as `campaignkit init` makes them

DEMO_MODULE = "ck_refdoc_demo"
DEMO_SOURCE = '''
from pydantic import BaseModel, Field, SecretStr

from campaignkit.core import Channel, Delivery, hookimpl


class Retry(BaseModel):
    attempts: int = Field(default=3, description="Tries before giving up.")


class PagerConfig(BaseModel):
    url: str = Field(description="The pager | gateway.")
    token: SecretStr
    rooms: list[str] = Field(default_factory=list, description="Rooms paged.")
    retry: Retry = Field(default_factory=Retry)


class Pager(Channel):
    name = "pager"
    Config = PagerConfig

    def send(self, message):
        return Delivery()


@hookimpl
def register_channels():
    return [Pager]
'''


def doc_rows(text: str) -> dict[str, list[str]]:
    """Settings table rows by dotted key: [key, type, default, env, description], cells as written."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in CELL.split(line)[1:-1]]
            key = cells[0].strip("`")
            assert key not in rows, f"{key} is documented twice"
            rows[key] = cells
    return rows


def env_name(rows: dict[str, list[str]], key: str) -> str:
    match = re.match(r"`(CAMPAIGNKIT_[A-Z0-9_]+)`", rows[key][3])
    assert match, f"{key}: no environment variable documented ({rows[key][3]})"
    return match.group(1)


def leaf_keys(model: type[BaseModel], prefix: str) -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        # An optional table (``mailbox: ImapConfig | None``) is documented by its keys, as a required one is.
        inner = [arg for arg in typing.get_args(field.annotation) if arg is not type(None)] or [field.annotation]
        nested = inner[0] if len(inner) == 1 else None
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            keys |= leaf_keys(nested, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CAMPAIGNKIT_ variable, .env or campaignkit.toml of the machine running the tests."""
    for key in [k for k in os.environ if k.startswith("CAMPAIGNKIT_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    return make_cli(monkeypatch, tmp_path, f"sqlite:///{tmp_path / 'campaignkit.db'}")


@pytest.fixture
def demo_plugin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A third-party plugin installed the way pip installs one: a module and a dist-info with its entry point."""
    site = tmp_path / "site"
    info = site / f"{DEMO_MODULE}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (site / f"{DEMO_MODULE}.py").write_text(DEMO_SOURCE)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DEMO_MODULE}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[campaignkit]\nrefdoc_demo = {DEMO_MODULE}\n")
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop(DEMO_MODULE, None)


def test_docs_configuration_md_is_current(cli: Cli) -> None:
    generated = cli("config", "reference", "--bundled").stdout
    written = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if generated != written:
        diff = "".join(list(difflib.unified_diff(written.splitlines(True), generated.splitlines(True),
                                                 "docs/configuration.md", "generated"))[:40])
        pytest.fail(f"docs/configuration.md is stale: run `make docs`\n{diff}")
    assert "`make docs`" in written.splitlines()[2]


def test_every_settings_key_and_bundled_plugin_key_is_documented() -> None:
    rows = doc_rows(DOC.read_text(encoding="utf-8"))
    expected = leaf_keys(Settings, "")
    assert "trace_plugins" in expected
    # The bundled set, found here without the generator: default plugins and this distribution's entry points.
    pm = build_plugin_manager(Settings.model_construct())
    shipped = {ep.name for ep in entry_points(group="campaignkit") if ep.value.startswith("campaignkit.plugins.")}
    assert {"email", "enforcement", "custom_field", "audit_sinks"} <= shipped
    bundled = set(DEFAULT_PLUGINS) | shipped
    tables = 0
    for reg in collect_registrations(pm):
        if reg.plugin in bundled and reg.kind != "step type":
            fields = leaf_keys(reg.cls.Config, f"plugins.config.{config_key(reg)}.")
            expected |= fields
            tables += bool(fields)
    assert tables >= 9  # smtp, file, scim, webhook_enforcement, http, jsonl, syslog, webhook, csv
    assert set(rows) == expected


def test_rows_give_type_default_and_variable() -> None:
    rows = doc_rows(render_reference(bundled_components(), BUNDLED_ORIGIN))
    assert rows["worker.batch_size"][1:4] == ["`int`", "`500`", "`CAMPAIGNKIT_WORKER__BATCH_SIZE`"]
    assert rows["trace_plugins"][1:4] == ["`bool`", "`false`", "`CAMPAIGNKIT_TRACE_PLUGINS`"]
    assert rows["trace_plugins"][4].startswith("Log every hook call")
    assert rows["scheduler.retention_days"][1:3] == [r"`float \| None`", "unset"]
    assert rows["template_dirs"][1:4] == ["`list[path]`", "`[]`", "`CAMPAIGNKIT_TEMPLATE_DIRS` (JSON)"]
    assert rows["secret_key"][1] == r"`secret \| None`"
    assert rows["plugins.config.smtp.host"][1:4] == ["`str`", "required", "`CAMPAIGNKIT_PLUGINS__CONFIG__SMTP__HOST`"]
    assert rows["plugins.config.smtp.security"][1:3] == ['`one of "starttls"/"tls"/"none"`', '`"starttls"`']
    assert rows["plugins.config.smtp.password"][1] == r"`secret \| None`"
    assert rows["plugins.config.webhook_enforcement.absent_statuses"][3].startswith("none")
    groups_env = "`CAMPAIGNKIT_PLUGINS__CONFIG__SCIM__GROUPS__<NAME>` (NAME lowercased)"
    assert rows["plugins.config.scim.groups"][3] == groups_env


@pytest.mark.usefixtures("clean_env")
def test_documented_variables_set_their_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rows = doc_rows(DOC.read_text(encoding="utf-8"))
    monkeypatch.setenv(env_name(rows, "worker.batch_size"), "42")
    monkeypatch.setenv(env_name(rows, "trace_plugins"), "true")
    monkeypatch.setenv(env_name(rows, "template_dirs"), '["/srv/a", "/srv/b"]')  # documented as JSON
    smtp_values = {"host": "mail.example.org", "sender": "ck@example.org", "port": "2525", "password": "pw"}
    for key, value in smtp_values.items():
        monkeypatch.setenv(env_name(rows, f"plugins.config.smtp.{key}"), value)
    settings = load_settings(var_dir=tmp_path / "var", database_url="sqlite://")
    assert settings.worker.batch_size == 42 and settings.trace_plugins is True
    assert settings.template_dirs == [Path("/srv/a"), Path("/srv/b")]
    runtime = Runtime(settings)
    try:
        smtp = runtime.registry.validate_config(runtime.registry.registration("channel", "smtp"))
    finally:
        runtime.close()
    # The plugin's own model turns the environment's text into its types.
    assert (smtp.host, smtp.port, smtp.password.get_secret_value()) == ("mail.example.org", 2525, "pw")


@pytest.mark.usefixtures("clean_env")
def test_what_variables_cannot_do_is_documented_truthfully(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A list key has no variable of its own (its value is not JSON-decoded), the table as JSON works and merges with
    the TOML table, and table entry names arrive lowercased."""
    def webhook_config() -> Any:
        runtime = Runtime(load_settings(var_dir=tmp_path / "var", database_url="sqlite://"))
        try:
            return runtime.registry.validate_config(runtime.registry.registration("enforcement action", "webhook"))
        finally:
            runtime.close()

    (tmp_path / "campaignkit.toml").write_text('[plugins.config.webhook_enforcement]\n'
                                               'url = "https://idp.example.org/revoke"\n')
    monkeypatch.setenv("CAMPAIGNKIT_PLUGINS__CONFIG__WEBHOOK_ENFORCEMENT__ABSENT_STATUSES", "[404]")
    with pytest.raises(ConfigurationError, match="absent_statuses"):
        webhook_config()
    monkeypatch.delenv("CAMPAIGNKIT_PLUGINS__CONFIG__WEBHOOK_ENFORCEMENT__ABSENT_STATUSES")
    monkeypatch.setenv("CAMPAIGNKIT_PLUGINS__CONFIG__WEBHOOK_ENFORCEMENT", '{"absent_statuses": [404, 410]}')
    config = webhook_config()
    assert config.absent_statuses == {404, 410} and config.url == "https://idp.example.org/revoke"

    monkeypatch.setenv("CAMPAIGNKIT_PLUGINS__CONFIG__SCIM__GROUPS__PayRoll", "payroll-users")
    assert load_settings().plugins.config["scim"]["groups"] == {"payroll": "payroll-users"}


@pytest.mark.usefixtures("clean_env")
def test_secrets_directory_rules_hold(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "secret_key").write_text(KEY + "\n")
    (secrets / "worker__batch_size").write_text("7")  # nested keys have no file of their own
    (secrets / "plugins").write_text('{"config": {"smtp": {"password": "from-file"}}}')
    (tmp_path / "campaignkit.toml").write_text('[plugins.config.smtp]\nhost = "mail.example.org"\n')
    monkeypatch.setenv("CAMPAIGNKIT_SECRETS_DIR", str(secrets))
    settings = load_settings()
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == KEY
    assert settings.worker.batch_size == 500
    assert settings.plugins.config["smtp"] == {"host": "mail.example.org", "password": "from-file"}

    (tmp_path / ".env").write_text(f"CAMPAIGNKIT_SECRETS_DIR={secrets}\n")
    monkeypatch.delenv("CAMPAIGNKIT_SECRETS_DIR")
    settings = load_settings()  # documented: the environment, then .env
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == KEY

    (secrets / "var_dir").write_text(str(tmp_path / "elsewhere"))
    with pytest.raises(ConfigurationError, match="var_dir cannot be set in the secrets directory"):
        load_settings()  # documented: it would locate the directory it is read from


@pytest.mark.usefixtures("demo_plugin")
def test_cli_lists_a_third_party_plugin(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = cli("config", "reference").stdout
    assert f"## plugins.config.pager — channel pager ({DEMO_MODULE})" in text
    rows = doc_rows(text)
    assert rows["plugins.config.pager.url"] == [
        "`plugins.config.pager.url`", "`str`", "required", "`CAMPAIGNKIT_PLUGINS__CONFIG__PAGER__URL`",
        r"The pager \| gateway."]
    assert rows["plugins.config.pager.token"][1:3] == ["`secret`", "required"]
    assert rows["plugins.config.pager.rooms"][3].startswith("none")
    assert rows["plugins.config.pager.retry.attempts"][1:4] == [
        "`int`", "`3`", "`CAMPAIGNKIT_PLUGINS__CONFIG__PAGER__RETRY__ATTEMPTS`"]
    assert "plugins.config.smtp.host" in rows  # bundled ones too

    out = tmp_path / "reference.md"
    cli("config", "reference", "--output", str(out))
    assert out.read_text(encoding="utf-8") == text
    assert "pager" not in cli("config", "reference", "--bundled").stdout
    assert not (tmp_path / "campaignkit.db").exists()  # no database needed

    # The nested key's documented variable reaches the plugin's nested model.
    monkeypatch.setenv("CAMPAIGNKIT_PLUGINS__CONFIG__PAGER__URL", "https://pager.example.org")
    monkeypatch.setenv("CAMPAIGNKIT_PLUGINS__CONFIG__PAGER__TOKEN", "t")
    monkeypatch.setenv(env_name(rows, "plugins.config.pager.retry.attempts"), "5")
    runtime = Runtime(load_settings())
    try:
        config = runtime.registry.validate_config(runtime.registry.registration("channel", "pager"))
    finally:
        runtime.close()
    assert config.retry.attempts == 5 and config.token.get_secret_value() == "t"
