"""Retrying failed runs from the step that failed, for any kind of campaign: by status, node, error text or run, from
the CLI, the API and the console; a dry run first; each retry a new visit with a new idempotency key, audited.

Emails go to a real SMTP server (aiosmtpd on 127.0.0.1) that refuses some recipients the first time, as a
mailbox that is full or a typo fixed later would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import Cli, as_json, make_cli
from conftest import Harness
from servers import serving
from sqlalchemy import select, update

from campaignkit.core import create_app
from campaignkit.core.accounts.roles import Role
from campaignkit.core.accounts.users import Accounts
from campaignkit.core.db import reading, writing
from campaignkit.core.db.schema import audit_history, campaigns, runs, step_records
from campaignkit.core.testing import SmtpInbox

JOURNEY = """
name: Welcome
audience: {source: csv, path: audience.csv, key: key}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: mail}
    - id: mail
      type: send_message
      config: {channel: smtp, subject: "Hello {{ target.name }}", text: "Hi {{ target.name }}"}
      next: done
    - {id: done, type: left_campaign}
"""
AUDIENCE = "key,email,name\nada,ada@example.org,Ada\nbob,bob@example.org,Bob\ncy,cy@example.org,Cy\n"
PASSWORD = "a long enough password"


def refuse_bob_and_cy(inbox: SmtpInbox) -> None:
    inbox.answers["bob@example.org"] = ["550 5.1.1 No such user"]
    inbox.answers["cy@example.org"] = ["550 5.7.1 Relaying denied"]


def run_rows(database_url_engine: Any, campaign_id: str) -> dict[str, Any]:
    with reading(database_url_engine) as conn:
        return {row.target_key: row for row in conn.execute(select(runs).where(runs.c.campaign_id == campaign_id))}


def mail_steps(engine: Any, run_id: int) -> list[Any]:
    with reading(engine) as conn:
        return list(conn.execute(select(step_records).where(step_records.c.run_id == run_id,
                                                            step_records.c.node_id == "mail")
                                 .order_by(step_records.c.id)))


def retries_audited(engine: Any) -> list[Any]:
    with reading(engine) as conn:
        return list(conn.execute(select(audit_history).where(audit_history.c.audit_sub_type == "Force Workflow Status")
                                 .order_by(audit_history.c.audit_id)))


# --- the CLI -----------------------------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, ck_smtp: SmtpInbox) -> Cli:
    run = make_cli(monkeypatch, tmp_path, database_url)
    monkeypatch.setenv("CAMPAIGNKIT_PLUGINS__CONFIG", json.dumps({"smtp": ck_smtp.channel_config()}))
    run("init")
    (tmp_path / "welcome.yaml").write_text(JOURNEY)
    (tmp_path / "audience.csv").write_text(AUDIENCE)
    return run


def test_failed_runs_are_previewed_then_retried_from_the_step_that_failed(cli: Cli, ck_smtp: SmtpInbox,
                                                                           database_url: str) -> None:
    from campaignkit.core.db import make_engine

    refuse_bob_and_cy(ck_smtp)
    cli("campaign", "create", "welcome.yaml")
    cli("campaign", "launch", "Welcome")
    cli("work", "--until-idle")
    engine = make_engine(database_url)
    campaign_id = as_json(cli("campaign", "show", "Welcome", "--format", "json"))["id"]
    before = run_rows(engine, campaign_id)
    assert {k: r.status for k, r in before.items()} == {"ada": "completed", "bob": "failed", "cy": "failed"}
    assert "No such user" in before["bob"].error and before["bob"].current_node == "mail"

    preview = as_json(cli("campaign", "retry", "Welcome", "--dry-run", "--format", "json"))
    assert preview["would_retry"] == 2
    assert [(r["target_key"], r["node"], r["to_node"]) for r in preview["runs"]] == [("bob", "mail", "mail"),
                                                                                     ("cy", "mail", "mail")]
    table = cli("campaign", "retry", "Welcome", "--dry-run").stdout
    assert "2 run(s) (failed) would be retried; nothing changed" in table and "Relaying denied" in table
    narrowed = {
        ("--error", "no such USER"): ["bob"], ("--node", "done"): [], ("--run", str(before["cy"].id)): ["cy"],
        ("--error", "100%_sure"): [],  # % and _ are the text itself, not wildcards
    }
    for options, expected in narrowed.items():
        found = as_json(cli("campaign", "retry", "Welcome", *options, "--dry-run", "--format", "json"))
        assert [r["target_key"] for r in found["runs"]] == expected, options
    assert {k: r.status for k, r in run_rows(engine, campaign_id).items()}["bob"] == "failed"  # nothing changed
    assert retries_audited(engine) == []

    out = cli("campaign", "retry", "Welcome", "--error", "No such user").stdout
    assert "1 run(s) (failed with an error containing 'No such user') to retry" in out
    cli("work", "--until-idle")
    after = run_rows(engine, campaign_id)
    assert (after["bob"].status, after["cy"].status) == ("completed", "failed")
    assert [m["To"] for m in ck_smtp.messages] == ["ada@example.org", "bob@example.org"]
    first, second = mail_steps(engine, after["bob"].id)
    assert (first.outcome, second.outcome) == ("failed", "ok")
    assert second.visit == first.visit + 1 and second.idempotency_key != first.idempotency_key  # really sent again
    (audited,) = retries_audited(engine)
    assert audited.user_name == cli_user() and f"run {after['bob'].id}" in audited.details
    assert "No such user" in audited.details and "selected as failed with an error containing" in audited.details

    assert "not something a journey campaign retries; one of failed" in cli(
        "campaign", "retry", "Welcome", "--status", "enforcement-failed", code=1).stderr
    engine.dispose()


def cli_user() -> str:
    import getpass

    return getpass.getuser()


# --- the API and the console ---------------------------------------------------------------------------------------


@pytest.fixture
def failed(make_runtime: Any, actor: Any, tmp_path: Path, ck_smtp: SmtpInbox) -> Iterator[tuple[str, Harness, str]]:
    """A campaign whose runs for bob and cy failed at their email, served by the web app."""
    refuse_bob_and_cy(ck_smtp)
    harness = Harness(make_runtime(plugins={"config": {"smtp": ck_smtp.channel_config()}}), actor, tmp_path)
    harness.csv(AUDIENCE)
    campaign_id = harness.create(JOURNEY.replace("path: audience.csv", f"path: {tmp_path / 'audience.csv'}"))
    harness.launch(campaign_id)
    harness.run_to_idle()
    for name, role in (("grace", Role.OPERATOR), ("alan", Role.AUDITOR)):
        Accounts(harness.runtime).add(name, role, actor, password=PASSWORD)
    with serving(create_app(harness.runtime)) as url:
        yield url, harness, campaign_id


def test_the_api_previews_and_retries_for_operators_only(failed: tuple[str, Harness, str], ck_smtp: SmtpInbox) -> None:
    url, harness, campaign_id = failed
    operator = {"Authorization": f"Bearer {harness.api_token('operator')}"}
    auditor = {"Authorization": f"Bearer {harness.api_token('auditor', scope='read')}"}
    endpoint = f"{url}/api/campaigns/{campaign_id}/retry"

    preview = httpx.post(endpoint, json={"dry_run": True, "error": "relaying"}, headers=operator)
    assert preview.status_code == 200 and preview.json()["would_retry"] == 1
    assert preview.json()["runs"][0]["target_key"] == "cy"
    assert httpx.post(endpoint, json={}, headers=auditor).status_code == 403
    unknown = httpx.post(endpoint, json={"status": "whatever"}, headers=operator)
    assert unknown.status_code == 400 and "one of failed" in unknown.json()["detail"]
    assert httpx.post(endpoint, json={"surprise": 1}, headers=operator).status_code == 422

    with writing(harness.runtime.engine) as conn:  # as a pause leaves it, with failed runs still to retry
        conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(state="paused"))
    paused = httpx.post(endpoint, json={}, headers=operator)
    assert paused.status_code == 409 and "resume it first" in paused.json()["detail"]
    with writing(harness.runtime.engine) as conn:
        conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(state="completed"))

    done = httpx.post(endpoint, json={}, headers=operator)
    assert done.status_code == 200 and done.json()["retried"] == 2
    harness.run_to_idle()
    assert {r.target_key: r.status for r in harness.runs(campaign_id)} == dict.fromkeys(("ada", "bob", "cy"),
                                                                                      "completed")
    assert {a.user_name for a in harness.audit("Force Workflow Status")} == {"operator-tester"}
    assert httpx.post(endpoint, json={"dry_run": True}, headers=operator).json() == {"would_retry": 0, "runs": []}


def test_the_console_shows_which_runs_then_retries_them_as_the_operator(failed: tuple[str, Harness, str]) -> None:
    url, harness, campaign_id = failed
    grace, alan = (signed_in(url, name) for name in ("grace", "alan"))
    page = httpx.get(f"{url}/campaigns/{campaign_id}", cookies=grace)
    assert 'id="retry-failed"' in page.text
    assert 'id="retry-failed"' not in httpx.get(f"{url}/campaigns/{campaign_id}", cookies=alan).text
    assert httpx.get(f"{url}/campaigns/{campaign_id}/retry", cookies=alan).status_code == 403

    preview = httpx.get(f"{url}/campaigns/{campaign_id}/retry", params={"error": "no such user"}, cookies=grace)
    assert preview.status_code == 200 and "1 run(s) match" in preview.text and "bob" in preview.text
    assert ">cy<" not in preview.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', preview.text).group(1)  # type: ignore[union-attr]
    done = httpx.post(f"{url}/campaigns/{campaign_id}/retry", cookies=grace,
                      data={"csrf": csrf, "status": "failed", "node": "", "error": "no such user"})
    assert done.status_code == 303 and done.headers["location"] == f"/campaigns/{campaign_id}?done=retried"
    assert httpx.post(f"{url}/campaigns/{campaign_id}/retry", cookies=grace,
                      data={"csrf": "forged", "status": "failed"}).status_code == 403
    harness.run_to_idle()
    assert {r.target_key: r.status for r in harness.runs(campaign_id)} == {
        "ada": "completed", "bob": "completed", "cy": "failed"}
    assert [a.user_name for a in harness.audit("Force Workflow Status")] == ["grace"]


def signed_in(url: str, name: str) -> dict[str, str]:
    answer = httpx.post(f"{url}/sign-in", data={"name": name, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return {"ck_session": answer.cookies["ck_session"]}
