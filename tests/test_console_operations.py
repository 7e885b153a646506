"""The console's Schedule and Plugins pages and their API twins: what will happen and when, for every role; what is
loaded and how it is configured, for admins only, with no secret in the page or the JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Harness
from pydantic import BaseModel, SecretStr
from servers import serving

from campaignkit.core import create_app
from campaignkit.core.accounts.roles import Role
from campaignkit.core.accounts.users import Accounts
from campaignkit.core.clock import FakeClock
from campaignkit.core.plugins.listing import blocked_plugins, masked_settings, redacted_url
from campaignkit.core.scheduling.service import SchedulerService
from campaignkit.core.scheduling.upcoming import upcoming
from campaignkit.core.settings import PluginSettings

PASSWORD = "a long enough password"
SMTP_PASSWORD = "smtp-password-never-shown-4711"
SIGNING_SECRET = "webhook-signing-secret-never-shown-0815"
HEADER_TOKEN = "header-token-never-shown-2342"
PATH_TOKEN = "T0PATHSECRET9"
INLINE_TOKEN = "inline-token-never-shown-1717"
SECRETS = (SMTP_PASSWORD, SIGNING_SECRET, HEADER_TOKEN, PATH_TOKEN, "query-secret-never-shown", INLINE_TOKEN)
PLUGIN_CONFIG = {
    "smtp": {"host": "127.0.0.1", "port": 2525, "security": "none", "username": "mailer", "password": SMTP_PASSWORD,
             "sender": "Reviews <reviews@example.org>"},
    "webhook": {"url": f"https://siem.example.org/hooks/{PATH_TOKEN}?token=query-secret-never-shown",
                "secret": SIGNING_SECRET},
    "webhook_enforcement": {"url": "https://idp.example.org/revoke/{{ target_key | segment }}",
                            "headers": {"Authorization": f"Bearer {HEADER_TOKEN}"}},
    # A secret where none belongs, in a body template: shown as set, never as text.
    "http": {"url": "https://inventory.example.org/fields/{{ target_key | segment }}",
             "body": f'{{"api_token": "{INLINE_TOKEN}", "value": "{{{{ value }}}}"}}'},
}


def flow(name: str, schedule: str) -> str:
    return f"""
name: {name}
audience: {{source: csv, path: audience.csv, key: key}}
schedule: {schedule}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: wait}}
    - {{id: wait, type: wait_for_event, config: {{events: [clicked]}}, edges: {{clicked: end}}}}
    - {{id: end, type: left_campaign}}
"""


@pytest.fixture
def console(make_runtime: Any, actor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        tuple[str, Harness]]:
    monkeypatch.chdir(tmp_path)  # the definitions' audience.csv
    harness = Harness(make_runtime(plugins={"config": PLUGIN_CONFIG}), actor, tmp_path)
    harness.csv("key,email\na,a@example.org\nb,b@example.org\n")
    accounts = Accounts(harness.runtime)
    for name, role in (("ada", Role.ADMIN), ("grace", Role.OPERATOR), ("alan", Role.AUDITOR)):
        accounts.add(name, role, actor, password=PASSWORD)
    with serving(create_app(harness.runtime)) as url:
        yield url, harness


def signed_in(url: str, name: str) -> dict[str, str]:
    answer = httpx.post(f"{url}/sign-in", data={"name": name, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return {"ck_session": answer.cookies["ck_session"]}


def test_the_schedule_shows_launches_cycles_deadlines_and_jobs_by_time(console: Any, clock: FakeClock) -> None:
    url, harness = console
    start_at = clock.now() + timedelta(days=2)
    one_off = harness.create(flow("Phishing drill", f"{{start_at: '{start_at.isoformat()}', end_after: P7D}}"))
    recurring = harness.create(flow("Quarterly review", "{cron: '0 9 1 */3 *', timezone: Europe/Paris}"))
    running = harness.create(flow("Welcome journey", "{end_after: P3D}"))
    unscheduled = harness.create(flow("Draft only", "null"))
    for campaign_id in (one_off, recurring, running):
        harness.campaigns.launch(campaign_id, harness.actor)
    harness.run_to_idle()

    items = upcoming(harness.runtime)
    assert [(item.event, item.campaign_name) for item in items] == [
        ("launch", "Phishing drill"), ("deadline", "Welcome journey"), ("next cycle", "Quarterly review")]
    launch, deadline, cycle = items
    assert launch.at == start_at and launch.status == "scheduled" and launch.recurrence is None
    assert deadline.at == clock.now() + timedelta(days=3) and deadline.status == "open"
    assert cycle.recurrence == "0 9 1 */3 * (Europe/Paris)" and cycle.following_at is not None
    assert cycle.following_at > cycle.at and cycle.following_at.month in (1, 4, 7, 10)
    assert all(item.job_id is None for item in items)  # no scheduler has run yet

    service = SchedulerService(harness.runtime)
    service.start()
    service.shutdown()  # its jobs stay in the job store, as they do when a scheduler stops
    for name in ("alan", "grace", "ada"):  # every role reads the schedule
        page = httpx.get(f"{url}/schedule", cookies=signed_in(url, name))
        assert page.status_code == 200 and 'href="/schedule" aria-current="page"' in page.text
        html = page.text
        rows = html.split('<table id="schedule"')[1].split("</table>")[0]
        assert rows.index("Phishing drill") < rows.index("Welcome journey") < rows.index("Quarterly review")
        assert f'<a href="/campaigns/{one_off}">Phishing drill</a>' in rows
        assert f'<a href="/campaigns/{running}">Welcome journey</a>' in rows
        assert start_at.strftime("%Y-%m-%d %H:%M") + " UTC" in rows and "in 2 d" in rows
        assert "repeats <code>0 9 1 */3 * (Europe/Paris)</code>" in rows
        assert f"launch:{launch.launch_id}" in rows and f"deadline:{deadline.launch_id}" in rows
        assert "Draft only" not in html and unscheduled not in html
        jobs = html.split('<table id="jobs"')[1].split("</table>")[0]
        assert "housekeeping:audit-dispatch" in jobs and "deliver new audit records" in jobs
        assert (f'data-job="launch:{launch.launch_id}"' in jobs
                and f'<a href="/campaigns/{one_off}">Phishing drill</a>' in jobs)

    token = harness.api_token("auditor", "read")
    api = httpx.get(f"{url}/api/schedule", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200
    body = api.json()
    assert [(item["event"], item["campaign_id"], item["job_id"]) for item in body["upcoming"]] == [
        ("launch", one_off, f"launch:{launch.launch_id}"), ("deadline", running, f"deadline:{deadline.launch_id}"),
        ("next cycle", recurring, f"launch:{cycle.launch_id}")]
    assert {"housekeeping:sync", "housekeeping:retention"} <= {job["id"] for job in body["jobs"]}


def test_an_empty_schedule_says_how_cycles_come_about(console: Any) -> None:
    url, _ = console
    page = httpx.get(f"{url}/schedule", cookies=signed_in(url, "grace")).text
    assert 'id="nothing-scheduled"' in page and 'id="no-jobs"' in page


def test_the_plugins_page_lists_what_is_loaded_and_masks_every_secret(console: Any) -> None:
    url, harness = console
    page = httpx.get(f"{url}/plugins", cookies=signed_in(url, "ada"))
    assert page.status_code == 200 and 'href="/plugins" aria-current="page"' in page.text
    html = page.text
    for plugin in ("email", "enforcement", "custom_field", "audit_sinks", "campaignkit.core.engine.steps",
                   "campaignkit.core.plugins.builtins"):
        assert f'data-plugin="{plugin}"' in html
    email = html.split('data-plugin="email"')[1].split("</tr>")[0]
    assert "channels:</span> file, smtp" in email and "bundled" in email
    assert 'id="hook-specs"' in html and 'id="none-blocked"' in html

    smtp = html.split('data-component="channel:smtp"')[1].split("</section>")[0]
    assert 'data-setting="password"' in smtp and "•••••• set" in smtp
    assert 'data-setting="username"' in smtp and "mailer" in smtp and "2525" in smtp
    sink = html.split('data-component="audit sink:webhook"')[1].split("</section>")[0]
    assert "https://siem.example.org/…" in sink and "not in audit.sinks" in sink
    updater = html.split('data-component="field updater:http"')[1].split("</section>")[0]
    assert 'data-setting="body"' in updater and "not shown: it may hold a secret" in updater
    action = html.split('data-component="enforcement action:webhook"')[1].split("</section>")[0]
    assert 'data-setting="headers.Authorization"' in action and "plugins.config.webhook_enforcement" in action
    for secret in SECRETS:
        assert secret not in html

    token = harness.api_token("admin", "write")
    api = httpx.get(f"{url}/api/plugins", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200
    body = api.json()
    for secret in SECRETS:
        assert secret not in api.text
    by_name = {plugin["name"]: plugin for plugin in body["plugins"]}
    assert by_name["email"]["registers"]["channel"] == ["file", "smtp"]
    settings = {(c["kind"], c["name"]): {s["key"]: s for s in c["settings"]} for c in body["settings"]}
    assert settings[("channel", "smtp")]["password"] == {"key": "password", "value": "set", "secret": True,
                                                          "configured": True}
    assert settings[("audit sink", "webhook")]["secret"]["value"] == "set"
    assert ("channel", "file") in settings  # configured or not, every component that takes settings is listed
    read_token = harness.api_token("admin", "read", user="ada-reader")
    assert httpx.get(f"{url}/api/plugins", headers={"Authorization": f"Bearer {read_token}"}).status_code == 200
    assert json.dumps(body)  # plain JSON all through


def test_only_admins_see_the_plugins(console: Any) -> None:
    url, harness = console
    for name in ("grace", "alan"):
        cookies = signed_in(url, name)
        refused = httpx.get(f"{url}/plugins", cookies=cookies)
        assert refused.status_code == 403 and "only admins" in refused.text and "smtp" not in refused.text
        assert 'href="/plugins"' not in httpx.get(f"{url}/schedule", cookies=cookies).text  # no link either
    assert 'href="/plugins"' in httpx.get(f"{url}/schedule", cookies=signed_in(url, "ada")).text
    for role, scope in (("operator", "write"), ("operator", "read"), ("auditor", "read")):
        token = harness.api_token(role, scope)
        refused = httpx.get(f"{url}/api/plugins", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403 and "admins only" in refused.json()["detail"]
    assert httpx.get(f"{url}/api/plugins").status_code == 401


def test_signed_out_people_are_sent_to_sign_in(console: Any) -> None:
    url, _ = console
    for path in ("/schedule", "/plugins"):
        answer = httpx.get(f"{url}{path}")
        assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in")
        stale = httpx.get(f"{url}{path}", cookies={"ck_session": "not-a-session"})
        assert stale.headers["location"] == "/sign-in"


@pytest.mark.parametrize("url, shown", [
    ("https://siem.example.org/hooks/T0/B0/XYZ", "https://siem.example.org/…"),
    ("https://user:pw@siem.example.org:8443/?token=abc#frag", "https://siem.example.org:8443/…"),
    ("https://siem.example.org", "https://siem.example.org"),
    ("http://[::1", "(set: not shown)"),
])
def test_a_url_setting_shows_where_it_goes_and_no_more(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


class Nested(BaseModel):
    name: str = "relay"
    api_key: str = "plain-but-named-a-key"


class Shaped(BaseModel):
    nested: Nested = Nested()
    tokens: list[SecretStr] = [SecretStr("in-a-list")]
    empty_password: SecretStr = SecretStr("")
    auth: dict[str, str] = {"user": "in-a-secret-table"}
    ports: list[int] = [25, 587]


def test_secrets_are_masked_wherever_they_sit_in_a_config() -> None:
    shown = {row.key: (row.value, row.secret) for row in masked_settings(Shaped(), {"ports": [25, 587]})}
    assert shown == {"nested.name": ("relay", False), "nested.api_key": ("set", True), "tokens": ("set", True),
                     "empty_password": ("not set", True), "auth.user": ("set", True), "ports": ("25, 587", False)}


def test_blocked_plugins_say_why_they_are_not_loaded(runtime: Any) -> None:
    settings = runtime.settings.model_copy(update={"plugins": PluginSettings(enabled=["email", "audit_sinks"],
                                                                             blocked=["audit_sinks", "gone"])})
    found = {plugin.name: (plugin.reason, plugin.version) for plugin in blocked_plugins(settings)}
    assert found["audit_sinks"][0] == found["gone"][0] == "listed in plugins.blocked"
    assert found["gone"][1] == "not installed"
    assert found["enforcement"][0] == "not listed in plugins.enabled" and "email" not in found
