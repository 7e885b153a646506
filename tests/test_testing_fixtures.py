"""The ck_ fixtures campaignkit ships for plugin authors, run as an author's test session would run them
(pytester: a pytest session of its own in a temporary folder, with a plugin module and an ini file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest_plugins = ["pytester"]

PLUGIN = '''
from campaignkit.core import Channel, Delivery, Message, hookimpl
from pydantic import BaseModel, ConfigDict

class PagerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = ">"

class Pager(Channel):
    name = "pager"
    Config = PagerConfig
    sent: list = []

    def send(self, message: Message) -> Delivery:
        Pager.sent.append(self.config.prefix + message.text)
        return Delivery(message_id=message.idempotency_key)

@hookimpl
def register_channels():
    return [Pager]
'''

FLOW = '''
FLOW = """
name: Page
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: later}
    - {id: later, type: time_delay, config: {duration: PT1H}, next: page}
    - id: page
      type: send_message
      config: {channel: CHANNEL, to: "{{ target.email }}", subject: s, text: "hi {{ target.key }}"}
      next: done
    - {id: done, type: left_campaign}
"""
'''


@pytest.fixture
def author(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(pager=PLUGIN)
    pytester.makeini("[pytest]\ncampaignkit_plugin = pager\n")
    pytester.syspathinsert()
    return pytester


def test_the_fixtures_run_a_campaign_through_the_plugin_under_test(author: pytest.Pytester) -> None:
    author.makepyfile(test_pager=FLOW.replace("CHANNEL", "pager") + '''
from datetime import timedelta
import pytest
import pager

@pytest.fixture
def ck_settings():
    return {"plugins": {"config": {"pager": {"prefix": "!"}}}}

def test_registered(ck_pm, ck_plugin):
    assert ck_plugin is pager and ck_pm.is_registered(pager)

def test_waits_until_the_clock_moves(ck_campaign, ck_clock):
    pager.Pager.sent.clear()
    (run,) = ck_campaign.run_campaign(FLOW, "key,email\\nada,ada@example.org\\n")
    assert run.status == "waiting" and pager.Pager.sent == []
    ck_clock.advance(timedelta(hours=1))
    ck_campaign.run_to_idle()
    assert ck_campaign.runs(run.campaign_id)[0].status == "completed" and pager.Pager.sent == ["!hi ada"]
    assert ck_campaign.audit("Created")

def test_other_settings_for_one_test(ck_make_campaign):
    pager.Pager.sent.clear()
    campaign = ck_make_campaign(plugins={"config": {"pager": {"prefix": "#"}}})
    assert campaign.runtime.settings.plugin_config("pager") == {"prefix": "#"}

def test_a_bad_setting_is_named(ck_make_runtime):
    from campaignkit.core import ConfigurationError
    with pytest.raises(ConfigurationError, match=r"plugins\\.config\\.pager\\.colour"):
        ck_make_runtime(plugins={"config": {"pager": {"colour": "red"}}})
''')
    author.runpytest().assert_outcomes(passed=4)


def test_without_the_ini_option_the_fixtures_say_what_to_set(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_runtime(ck_runtime):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*set `campaignkit_plugin = \"your_module\"` under [[]tool.pytest.ini_options]*"])


def test_ck_smtp_receives_what_the_smtp_channel_sends_and_scripts_refusals(author: pytest.Pytester) -> None:
    author.makepyfile(test_mail=FLOW.replace("CHANNEL", "smtp") + '''
from datetime import timedelta
import pytest

@pytest.fixture
def ck_settings(ck_smtp):
    return {"plugins": {"config": {"smtp": ck_smtp.channel_config()}}}

def test_mail(ck_campaign, ck_smtp, ck_clock):
    ck_smtp.answers["grace@example.org"] = ["451 4.3.0 try later"]
    runs = ck_campaign.run_campaign(FLOW, "key,email\\nada,ada@example.org\\ngrace,grace@example.org\\n")
    ck_clock.advance(timedelta(hours=1))
    ck_campaign.run_to_idle()
    assert [m["Subject"] for m in ck_smtp.to("ada@example.org")] == ["s"]
    assert ck_smtp.to("grace@example.org") == []  # deferred: retried after its backoff
    ck_clock.advance(timedelta(hours=1))
    ck_campaign.run_to_idle()
    assert len(ck_smtp.wait_for(2)) == 2
    assert {r.status for r in ck_campaign.runs(runs[0].campaign_id)} == {"completed"}
''')
    author.runpytest().assert_outcomes(passed=1)


def test_ck_http_records_requests_and_answers_as_scripted(author: pytest.Pytester) -> None:
    author.makepyfile(test_http='''
import httpx
from campaignkit.core.testing import answer_in_turn

def test_http(ck_http):
    ck_http.answer = lambda seen: (201, b'{"id": 7}', {"X-Message-Id": "m-7"})
    reply = httpx.post(ck_http.url + "/hooks/a?x=1", json={"text": "hi"}, headers={"Authorization": "Bearer t"})
    assert reply.status_code == 201 and reply.headers["X-Message-Id"] == "m-7"
    assert httpx.get(ck_http.url + "/people?page=2").json() == {"id": 7}
    first, second = ck_http.seen
    assert (first.method, first.path, first.json(), first.headers["Authorization"]) == (
        "POST", "/hooks/a?x=1", {"text": "hi"}, "Bearer t")
    assert (second.method, second.path) == ("GET", "/people?page=2")
    ck_http.answer = answer_in_turn(503)
    assert [httpx.get(ck_http.url).status_code for _ in range(2)] == [503, 200]
''')
    author.runpytest().assert_outcomes(passed=1)


# --- hermetic settings: what `make run` leaves in a checkout stays out of the fixtures ------------------------------

LEAKS = {  # what the checkout's configuration would change, each with the value it must keep in the fixtures
    "timezone": ("Europe/Paris", "UTC"),
    "worker.batch_size": (7, 500),
    "worker.threads": (3, 8),
    "trace_plugins": (True, False),
    "audit.task_events": (True, False),
    "web.base_url": ("http://leak.example.org", "http://127.0.0.1:8080"),
}


def setting(settings: Any, dotted: str) -> Any:
    value = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


LEGACY_TOKEN = "Qm3vT8-xL2pK9rW5zN1cJ7hF4bD6gS0a-legacy"


def leaky_checkout(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``path`` as the working directory of a checkout where `make run` has been: `campaignkit init` made
    var/secrets/{secret_key,audit_key} (and an older release the shared api_token, written here by hand), and a
    campaignkit.toml, a .env and CAMPAIGNKIT_ variables set LEAKS (and where the secrets are)."""
    for key in [k for k in os.environ if k.startswith("CAMPAIGNKIT_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(path)
    from typer.testing import CliRunner

    from campaignkit.core.cli.app import register

    result = CliRunner().invoke(register(), ["init"])
    assert result.exit_code == 0, result.output
    assert (path / "var" / "secrets" / "secret_key").is_file()
    (path / "var" / "secrets" / "api_token").write_text(LEGACY_TOKEN)
    (path / "campaignkit.toml").write_text('timezone = "Europe/Paris"\n[worker]\nbatch_size = 7\n')
    (path / ".env").write_text("CAMPAIGNKIT_WORKER__THREADS=3\nCAMPAIGNKIT_TRACE_PLUGINS=true\n")
    monkeypatch.setenv("CAMPAIGNKIT_AUDIT__TASK_EVENTS", "true")
    monkeypatch.setenv("CAMPAIGNKIT_WEB__BASE_URL", "http://leak.example.org")
    monkeypatch.setenv("CAMPAIGNKIT_SECRETS_DIR", str(path / "var" / "secrets"))


def test_make_runtime_sees_nothing_of_the_checkout_it_runs_in(make_runtime: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from servers import serving

    from campaignkit.core.web import create_app

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    leaky_checkout(checkout, monkeypatch)
    runtime = make_runtime()
    assert runtime.settings.api_token is None and runtime.settings.var_dir == tmp_path / "var"
    assert {key: setting(runtime.settings, key) for key in LEAKS} == {key: kept for key, (_, kept) in LEAKS.items()}
    with serving(create_app(runtime)) as url:
        response = httpx.get(f"{url}/api/campaigns", headers={"Authorization": f"Bearer {LEGACY_TOKEN}"})
    assert response.status_code == 401  # the checkout's token opens nothing in the test's app


@pytest.mark.parametrize("ck_settings_sources, seen", [
    (("environment",), {"audit.task_events", "web.base_url"}),
    (("dotenv",), {"worker.threads", "trace_plugins"}),
    (("toml",), {"timezone", "worker.batch_size"}),
    (("environment", "dotenv", "toml"), set(LEAKS)),
])
def test_a_test_opts_in_to_a_source_by_name(ck_settings_sources: tuple[str, ...], seen: set[str], make_runtime: Any,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    leaky_checkout(checkout, monkeypatch)
    settings = make_runtime().settings
    assert {key for key, (leaked, _) in LEAKS.items() if setting(settings, key) == leaked} == seen
    assert settings.api_token is None  # "secrets" not asked for, though CAMPAIGNKIT_SECRETS_DIR is read


@pytest.mark.parametrize("ck_settings_sources", [("secrets",)])
def test_the_secrets_source_reads_the_test_s_own_var_dir(make_runtime: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    leaky_checkout(checkout, monkeypatch)
    (tmp_path / "var" / "secrets").mkdir(parents=True)
    (tmp_path / "var" / "secrets" / "timezone").write_text("Asia/Tokyo")
    settings = make_runtime().settings
    # Not the checkout's var/secrets, nor CAMPAIGNKIT_SECRETS_DIR: the environment was not asked for.
    assert settings.timezone == "Asia/Tokyo" and settings.api_token is None


def test_the_shipped_fixtures_see_nothing_of_the_checkout_they_run_in(author: pytest.Pytester,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    leaky_checkout(author.path, monkeypatch)
    author.makepyfile(test_hermetic='''
import pytest
from fastapi.testclient import TestClient
from campaignkit.core.web import create_app

def test_nothing_leaks(ck_runtime, tmp_path):
    settings = ck_runtime.settings
    assert settings.api_token is None and settings.var_dir == tmp_path / "var"
    assert (settings.timezone, settings.worker.batch_size, settings.worker.threads) == ("UTC", 500, 8)
    assert (settings.trace_plugins, settings.audit.task_events) == (False, False)
    assert settings.web.base_url == "http://127.0.0.1:8080"
    with TestClient(create_app(ck_runtime)) as client:
        response = client.get("/api/campaigns", headers={"Authorization": "Bearer LEGACY"})
    assert response.status_code == 401  # the checkout's api_token opens nothing here

class TestOptingIn:
    @pytest.fixture
    def ck_settings_sources(self):
        return ["toml", "environment"]

    def test_the_sources_asked_for_are_read(self, ck_runtime):
        settings = ck_runtime.settings
        assert (settings.timezone, settings.worker.batch_size, settings.audit.task_events) == ("Europe/Paris", 7, True)
        assert settings.worker.threads == 8 and settings.api_token is None
'''.replace("LEGACY", LEGACY_TOKEN))
    author.runpytest().assert_outcomes(passed=2)


def test_the_suite_s_own_tests_see_nothing_of_the_checkout_either(pytester: pytest.Pytester,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that read settings without the fixtures (load_settings(), the CLI) run in an empty directory without
    the shell's CAMPAIGNKIT_ settings variables: tests/conftest.py, run where `make run` has been."""
    leaky_checkout(pytester.path, monkeypatch)
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(test_plain='''
import os
from campaignkit.core.settings import load_settings

def test_load_settings_reads_nothing_of_the_checkout():
    settings = load_settings()
    assert settings.api_token is None and settings.secret_key is None
    assert (settings.timezone, settings.worker.batch_size, settings.worker.threads) == ("UTC", 500, 8)
    assert (settings.trace_plugins, settings.audit.task_events) == (False, False)
    assert not [k for k in os.environ if k.startswith("CAMPAIGNKIT_") and not k.startswith("CAMPAIGNKIT_TEST_")]
''')
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_ck_web_serves_the_app_to_each_role_on_the_console_and_the_api(author: pytest.Pytester) -> None:
    # A module name no test of this suite has: pytester runs the author's session in this process.
    author.makepyfile(test_author_site='''
import pytest

FLOW = """
name: Waiting
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: end}}
    - {id: end, type: left_campaign}
"""

@pytest.fixture
def ck_settings(ck_web_url):
    return {"web": {"base_url": ck_web_url}}

def test_roles(ck_web, ck_campaign, ck_web_url):
    assert ck_web.url == ck_web_url == ck_campaign.runtime.settings.web.base_url
    audience = ck_campaign.csv("key\\nk1\\nk2\\n")
    campaign_id = ck_campaign.create(FLOW + f"audience: {{source: csv, path: {audience}}}\\n")
    auditor, operator = ck_web.console("auditor"), ck_web.console("operator")
    assert "Waiting" in auditor.get(f"/campaigns/{campaign_id}").text
    assert auditor.submit(f"/campaigns/{campaign_id}/actions", action="launch").status_code == 403
    launched = operator.submit(f"/campaigns/{campaign_id}/actions", action="launch")
    assert launched.status_code == 303 and len(ck_campaign.runs(campaign_id)) == 2
    assert [c["name"] for c in ck_web.api("auditor", "read").get("/api/campaigns").json()] == ["Waiting"]
    assert ck_web.api("operator", "read").post(f"/api/campaigns/{campaign_id}/pause").status_code == 403
    assert ck_web.api("operator").post(f"/api/campaigns/{campaign_id}/pause").status_code == 200
    assert [r.user_name for r in ck_campaign.audit("Workflow Pause Request")] == ["operator-tester"]
''')
    author.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
