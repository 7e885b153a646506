"""Settings from environment, .env, the secrets directory and campaignkit.toml, in that order of precedence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from campaignkit.core import ConfigurationError
from campaignkit.core.settings import load_settings

KEY = "Uo0cW3pZ-7nHq5VbL2xKm9RtE4yJd8aSf1gCi6Nw"  # random, as `campaignkit init` makes them


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: Any, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CAMPAIGNKIT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.effective_database_url == "sqlite:///var/campaignkit.db"
    assert settings.audit.task_events is False and settings.secret_key is None


def test_sources_and_their_precedence(monkeypatch: Any, tmp_path: Path) -> None:
    (tmp_path / "campaignkit.toml").write_text('timezone = "Europe/Berlin"\n[worker]\nbatch_size = 10\nthreads = 3\n'
                                               '[audit]\ntask_events = true\n')
    (tmp_path / ".env").write_text("CAMPAIGNKIT_WORKER__THREADS=5\n")
    secrets = tmp_path / "var" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "secret_key").write_text(KEY)
    monkeypatch.setenv("CAMPAIGNKIT_WORKER__BATCH_SIZE", "20")
    settings = load_settings()
    assert settings.timezone == "Europe/Berlin" and settings.audit.task_events is True  # TOML
    assert settings.worker.threads == 5  # .env over TOML
    assert settings.worker.batch_size == 20  # environment over TOML
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == KEY
    assert KEY not in repr(settings)


def test_config_file_from_the_environment(monkeypatch: Any, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('[plugins]\nblocked = ["email"]\n[plugins.config.smtp]\nhost = "mail"\n')
    monkeypatch.setenv("CAMPAIGNKIT_CONFIG", str(other))
    settings = load_settings()
    assert settings.plugins.blocked == ["email"] and settings.plugin_config("smtp") == {"host": "mail"}
    monkeypatch.setenv("CAMPAIGNKIT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigurationError, match="CAMPAIGNKIT_CONFIG: no such file"):
        load_settings()


def test_an_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "campaignkit.toml").write_text("[worker]\nbatchsize = 10\n")
    with pytest.raises(ConfigurationError, match=r"worker\.batchsize: Extra inputs are not permitted"):
        load_settings()


@pytest.mark.parametrize("key, value, expected", [
    ("CAMPAIGNKIT_WORKER__BATCH_SIZE", "0", "worker.batch_size: Input should be greater than or equal to 1"),
    ("CAMPAIGNKIT_AUDIT__TASK_EVENTS", "perhaps", "audit.task_events: Input should be a valid boolean"),
    ("CAMPAIGNKIT_AUDIT__SINKS", "[not json", "invalid configuration"),
])
def test_invalid_values_name_the_key(monkeypatch: Any, key: str, value: str, expected: str) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings()
    assert expected in str(excinfo.value) and excinfo.value.exit_code == 2


@pytest.mark.parametrize("key", ["secret_key", "api_token", "audit_key"])
@pytest.mark.parametrize("weak", ["short-but-random-Q7x", "k" * 48, "abababababababababababababababab", "0123" * 8])
def test_installation_secrets_must_be_long_and_random(key: str, weak: str, monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(**{key: weak})
    message = str(refused.value)
    assert message.startswith(f"invalid configuration: {key}:") and "secrets.token_urlsafe" in message
    assert weak not in message  # a refused secret is never echoed
    assert load_settings(**{key: KEY}) is not None


def test_previous_keys_are_checked_like_the_current_ones(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"previous_secret_keys\.0"):
        load_settings(secret_key=KEY, previous_secret_keys=["k" * 40])


OTHER_KEY = "Zr4Kp8sV2nQw6YbT0mHc3XuJ7fLa1dGe5iNo9qWs"  # a second random key, to tell the two places apart


def two_secrets_dirs(tmp_path: Path) -> Path:
    """A decoy ./var/secrets/api_token and the one under elsewhere/, the var_dir a test names; returns elsewhere."""
    for var_dir, key in ((tmp_path / "var", OTHER_KEY), (tmp_path / "elsewhere", KEY)):
        (var_dir / "secrets").mkdir(parents=True)
        (var_dir / "secrets" / "api_token").write_text(key + "\n")
    return tmp_path / "elsewhere"


def api_token(**overrides: Any) -> str | None:
    token = load_settings(**overrides).api_token
    return None if token is None else token.get_secret_value()


def test_the_secrets_directory_follows_an_explicit_var_dir(tmp_path: Path) -> None:
    elsewhere = two_secrets_dirs(tmp_path)
    assert api_token() == OTHER_KEY  # ./var by default
    assert api_token(var_dir=elsewhere) == KEY


@pytest.mark.parametrize("source", ["environment", "dotenv", "toml"])
def test_the_secrets_directory_follows_the_var_dir_of_every_source(source: str, monkeypatch: Any,
                                                                  tmp_path: Path) -> None:
    elsewhere = two_secrets_dirs(tmp_path)
    if source == "environment":
        monkeypatch.setenv("CAMPAIGNKIT_VAR_DIR", str(elsewhere))
    elif source == "dotenv":
        (tmp_path / ".env").write_text(f"CAMPAIGNKIT_VAR_DIR={elsewhere}\n")
    else:
        (tmp_path / "campaignkit.toml").write_text(f"var_dir = {str(elsewhere)!r}\n")
    settings = load_settings()
    assert settings.var_dir == elsewhere and api_token() == KEY


def test_the_var_dir_of_a_higher_source_wins_for_the_secrets_directory_too(monkeypatch: Any, tmp_path: Path) -> None:
    elsewhere = two_secrets_dirs(tmp_path)
    (tmp_path / "campaignkit.toml").write_text(f"var_dir = {str(tmp_path / 'var')!r}\n")
    (tmp_path / ".env").write_text(f"CAMPAIGNKIT_VAR_DIR={elsewhere}\n")
    assert api_token() == KEY  # .env over TOML
    monkeypatch.setenv("CAMPAIGNKIT_VAR_DIR", str(tmp_path / "var"))
    assert api_token() == OTHER_KEY  # environment over .env
    assert api_token(var_dir=elsewhere) == KEY  # arguments over everything


@pytest.mark.parametrize("source", ["environment", "dotenv"])
def test_secrets_dir_and_config_variables_override_from_the_environment_or_dotenv(
        source: str, monkeypatch: Any, tmp_path: Path) -> None:
    elsewhere = two_secrets_dirs(tmp_path)
    config = tmp_path / "site.toml"
    config.write_text('timezone = "Europe/Berlin"\n')
    variables = {"CAMPAIGNKIT_SECRETS_DIR": str(elsewhere / "secrets"), "CAMPAIGNKIT_CONFIG": str(config)}
    if source == "environment":
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
    else:
        (tmp_path / ".env").write_text("".join(f"{name}={value}\n" for name, value in variables.items()))
    settings = load_settings(var_dir=tmp_path / "var")  # the explicit directory beats any var_dir
    assert settings.api_token is not None and settings.api_token.get_secret_value() == KEY
    assert settings.timezone == "Europe/Berlin"


def test_var_dir_cannot_come_from_the_secrets_directory_it_locates(tmp_path: Path) -> None:
    (tmp_path / "var" / "secrets").mkdir(parents=True)
    (tmp_path / "var" / "secrets" / "var_dir").write_text(str(tmp_path / "elsewhere"))
    with pytest.raises(ConfigurationError, match="var_dir cannot be set in the secrets directory"):
        load_settings()


def test_settings_can_be_restricted_to_their_arguments(monkeypatch: Any, tmp_path: Path) -> None:
    from campaignkit.core.settings import settings_reading

    two_secrets_dirs(tmp_path)
    (tmp_path / "campaignkit.toml").write_text('timezone = "Europe/Berlin"\n')
    (tmp_path / ".env").write_text("CAMPAIGNKIT_WORKER__THREADS=5\n")
    monkeypatch.setenv("CAMPAIGNKIT_WORKER__BATCH_SIZE", "20")
    monkeypatch.setenv("CAMPAIGNKIT_SECRETS_DIR", str(tmp_path / "elsewhere" / "secrets"))
    bare = settings_reading()(worker={"poll_seconds": 2})
    assert (bare.api_token, bare.timezone, bare.worker.threads, bare.worker.batch_size) == (None, "UTC", 8, 500)
    assert bare.worker.poll_seconds == 2
    secrets_only = settings_reading("secrets")()
    assert secrets_only.api_token is not None and secrets_only.api_token.get_secret_value() == OTHER_KEY
    assert settings_reading("environment", "secrets")().api_token.get_secret_value() == KEY  # type: ignore[union-attr]
    assert settings_reading("toml")().timezone == "Europe/Berlin"
    assert settings_reading("dotenv")().worker.threads == 5
    with pytest.raises(ValueError, match="unknown settings source 'files'"):
        settings_reading("files")


def test_init_writes_the_secrets_where_settings_read_them(monkeypatch: Any, tmp_path: Path) -> None:
    from cli_support import make_cli

    cli = make_cli(monkeypatch, tmp_path, f"sqlite:///{tmp_path / 'campaignkit.db'}")
    monkeypatch.delenv("CAMPAIGNKIT_VAR_DIR")
    (tmp_path / "campaignkit.toml").write_text(f"var_dir = {str(tmp_path / 'site')!r}\n")
    cli("init")
    assert sorted(p.name for p in (tmp_path / "site" / "secrets").iterdir()) == ["audit_key", "secret_key"]
    assert not (tmp_path / "var").exists()
    assert load_settings().secret_key is not None and load_settings().audit_key is not None
