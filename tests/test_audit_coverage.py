"""What people and system tasks do is audited, in the transaction of the change: audience file imports (every
launch, scheduled cycles too), events people send (CLI and API), refused API tokens, every scheduler job."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Harness
from servers import serving
from sqlalchemy import select, text
from test_web import TOKEN, auth
from typer.testing import CliRunner

from campaignkit.core import AudienceError, AudienceSource, Target, hookimpl
from campaignkit.core.audit import Actor, AuditObject, AuditSubType, AuditType, record
from campaignkit.core.cli.app import register
from campaignkit.core.db import reading, writing
from campaignkit.core.db.schema import audit_history, launches, runs
from campaignkit.core.engine.events import send_event
from campaignkit.core.scheduling import jobs
from campaignkit.core.scheduling.service import SchedulerService
from campaignkit.core.web import create_app

WAITING = """
name: Waiting
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: done}}
    - {id: done, type: left_campaign}
"""


def with_audience(path: Path | str, schedule: str = "null", name: str = "Imported") -> str:
    return f"""
name: {name}
audience: {{source: csv, path: '{path}', key: key}}
schedule: {schedule}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: done}}
    - {{id: done, type: left_campaign}}
"""


def audits(runtime: Any, sub_type: str) -> list[Any]:
    with runtime.engine.connect() as conn:
        return list(conn.execute(select(audit_history).where(audit_history.c.audit_sub_type == sub_type)
                                 .order_by(audit_history.c.audit_id)))


def audit_count(runtime: Any) -> int:
    with runtime.engine.connect() as conn:
        return len(conn.execute(select(audit_history.c.audit_id)).all())


# --- 1. audience file imports ---------------------------------------------------------------------------------------


def test_a_launch_from_the_definitions_own_csv_is_a_file_import(harness: Harness, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a definition without a file of its own resolves its audience here
    harness.csv("key,email\na,a@example.org\nb,b@example.org\na,again@example.org\n")
    campaign_id = harness.create(with_audience("audience.csv"))
    result = harness.campaigns.launch(campaign_id, harness.actor)  # no --audience: the definition's file
    assert result.status == "launched" and result.target_count == 2
    (row,) = audits(harness.runtime, "File Import")
    assert (row.audit_type, row.user_name, row.object_id, row.object_name) == (
        "Client Job", "tester", campaign_id, "Imported")
    assert str((tmp_path / "audience.csv").resolve()) in row.details and "source csv" in row.details
    assert "3 row(s), 2 target(s)" in row.details and f"launch {result.launch_id}" in row.details


def test_an_explicit_audience_file_is_still_a_file_import(harness: Harness) -> None:
    campaign_id = harness.create(WAITING)
    assert harness.launch(campaign_id, harness.csv("key\nk1\nk2\n", "people.csv")) == 2
    (row,) = audits(harness.runtime, "File Import")
    assert row.user_name == "tester" and "people.csv" in row.details and "2 row(s), 2 target(s)" in row.details


def test_every_scheduled_cycle_is_a_file_import_by_the_system(harness: Harness, clock: Any, tmp_path: Path) -> None:
    audience = harness.csv("key\na\nb\nc\n")
    daily = "{cron: '0 9 * * *', timezone: UTC}"
    campaign_id = harness.create(with_audience(audience, daily))
    first = harness.campaigns.launch(campaign_id, harness.actor)
    assert first.status == "scheduled" and audits(harness.runtime, "File Import") == []
    system = Actor.system(harness.runtime.instance_id)
    for day in range(2):
        clock.set(first.cycle_at + timedelta(days=day, seconds=1))
        (outcome,) = harness.campaigns.launch_due(system)
        assert outcome.status == "launched" and outcome.target_count == 3
    rows = audits(harness.runtime, "File Import")
    assert len(rows) == 2
    for row in rows:
        assert row.audit_type == "Client Job" and row.user_name == system.user_name
        assert str(audience.resolve()) in row.details and "3 row(s), 3 target(s)" in row.details


def test_a_bad_row_leaves_no_file_import(harness: Harness, clock: Any) -> None:
    bad = harness.csv("key,email\na,a@example.org\n,missing-key@example.org\n")
    campaign_id = harness.create(with_audience(bad))
    with pytest.raises(AudienceError, match=r"audience\.csv:3"):
        harness.campaigns.launch(campaign_id, harness.actor)
    assert audits(harness.runtime, "File Import") == [] and audits(harness.runtime, "Workflow Started") == []

    # The same in a scheduled cycle: the launch stays scheduled, nothing of it is written, not even its audit.
    later = harness.create(with_audience(bad, f"{{start_at: '{(clock.now() + timedelta(hours=1)).isoformat()}'}}",
                                         name="Later"))
    scheduled = harness.campaigns.launch(later, harness.actor)
    clock.set(scheduled.cycle_at + timedelta(seconds=1))
    with pytest.raises(AudienceError):
        harness.campaigns.run_cycle(scheduled.launch_id, Actor.system(harness.runtime.instance_id),
                                    grace=timedelta(hours=1))
    assert audits(harness.runtime, "File Import") == [] and audits(harness.runtime, "Workflow Started") == []
    with harness.runtime.engine.connect() as conn:
        assert conn.execute(select(launches.c.status).where(launches.c.id == scheduled.launch_id)).scalar() \
            == "scheduled"
        assert conn.execute(select(runs.c.id)).first() is None


class Directory(AudienceSource):
    """directory: targets from a directory service, not from a file."""

    name = "directory"

    def targets(self, spec: Mapping[str, Any], base_dir: Path) -> Iterator[Target]:
        yield from (Target(key=key, attributes={"key": key}) for key in ("x", "y"))


class DirectoryPlugin:
    @hookimpl
    def register_audience_sources(self) -> list[type[AudienceSource]]:
        return [Directory]


def test_a_source_that_reads_no_file_is_no_file_import(make_runtime: Any, actor: Actor, tmp_path: Path) -> None:
    h = Harness(make_runtime(extra_plugins=(DirectoryPlugin(),)), actor, tmp_path)
    campaign_id = h.create(WAITING + "audience: {source: directory}\n")
    assert h.campaigns.launch(campaign_id, actor).target_count == 2
    assert audits(h.runtime, "File Import") == []
    (started,) = audits(h.runtime, "Workflow Started")
    assert "2 run(s)" in started.details


# --- 2. events people send ------------------------------------------------------------------------------------------


def waiting_runs(harness: Harness) -> tuple[str, dict[str, Any]]:
    """Two waiting runs, k1 and k2, then k1 finished by a (system, unaudited) event."""
    campaign_id = harness.create(WAITING)
    harness.launch(campaign_id, harness.csv("key\nk1\nk2\n"))
    harness.run_to_idle()
    by_key = {r.target_key: r for r in harness.runs(campaign_id)}
    send_event(harness.runtime, by_key["k1"].id, "clicked", source="test")
    harness.run_to_idle()
    by_key = {r.target_key: r for r in harness.runs(campaign_id)}
    assert (by_key["k1"].status, by_key["k2"].status) == ("completed", "waiting")
    assert audits(harness.runtime, "Workflow Trigger Request") == []  # an event without a person is not audited
    return campaign_id, by_key


def test_event_send_on_the_cli_is_audited_with_the_local_user(
    harness: Harness, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign_id, by_key = waiting_runs(harness)
    for key in [k for k in os.environ if k.startswith("CAMPAIGNKIT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CAMPAIGNKIT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CAMPAIGNKIT_DATABASE_URL", database_url)
    # The same audit key as the harness's runtime: one chain, one key on every host.
    monkeypatch.setenv("CAMPAIGNKIT_AUDIT_KEY", harness.runtime.settings.audit_key.get_secret_value())
    monkeypatch.setenv("CAMPAIGNKIT_CONFIG", "")
    app, runner = register(), CliRunner()

    finished = runner.invoke(app, ["event", "send", str(by_key["k1"].id), "clicked"])
    assert finished.exit_code != 0 and "completed" in finished.stderr
    assert audits(harness.runtime, "Workflow Trigger Request") == []  # the refused event left no record

    sent = runner.invoke(app, ["event", "send", str(by_key["k2"].id), "clicked", "--payload", '{"ip": "10.0.0.9"}'])
    assert sent.exit_code == 0, sent.stderr
    (row,) = audits(harness.runtime, "Workflow Trigger Request")
    local = Actor.local_user()
    assert (row.audit_type, row.user_name, row.computer_name, row.computer_ip) == (
        "Interaction Event", local.user_name, local.computer_name, "127.0.0.1")
    assert (row.object_id, row.object_name) == (campaign_id, "Waiting")
    assert "'clicked'" in row.details and f"run {by_key['k2'].id}" in row.details and "via cli" in row.details
    assert "payload keys: ip" in row.details and "10.0.0.9" not in row.details


def test_an_event_posted_to_the_api_is_audited_as_the_token_s_account_from_the_client(
        make_runtime: Any, actor: Actor, tmp_path: Path) -> None:
    harness = Harness(make_runtime(), actor, tmp_path)
    campaign_id, by_key = waiting_runs(harness)
    token = harness.api_token("operator", "write", user="grace@example.org")
    with serving(create_app(harness.runtime)) as url:
        refused = httpx.post(f"{url}/api/runs/{by_key['k1'].id}/events", json={"name": "clicked"},
                             headers=auth(token))
        assert refused.status_code == 409
        assert audits(harness.runtime, "Workflow Trigger Request") == []
        posted = httpx.post(f"{url}/api/runs/{by_key['k2'].id}/events",
                            json={"name": "clicked", "payload": {"via": "api"}}, headers=auth(token))
        assert posted.status_code == 201
    (row,) = audits(harness.runtime, "Workflow Trigger Request")
    assert (row.audit_type, row.user_name, row.computer_ip, row.object_id) == (
        "Interaction Event", "grace@example.org", "127.0.0.1", campaign_id)
    assert f"event {posted.json()['event_id']}" in row.details and f"run {by_key['k2'].id}" in row.details
    assert "via api" in row.details


# --- 3. refused API tokens ------------------------------------------------------------------------------------------


def test_a_refused_api_token_is_a_failed_login_without_the_token(make_runtime: Any) -> None:
    runtime = make_runtime(api_token=TOKEN)
    guess = "guessed-" + "g" * 40
    with serving(create_app(runtime)) as url:
        assert httpx.get(f"{url}/api/campaigns").status_code == 401
        assert httpx.get(f"{url}/api/campaigns", headers=auth(guess)).status_code == 401
        assert httpx.get(f"{url}/api/runs/1", headers={"Authorization": TOKEN}).status_code == 401  # no "Bearer"
        before = audit_count(runtime)
        assert httpx.get(f"{url}/api/campaigns", headers=auth()).status_code == 200
        assert audit_count(runtime) == before  # a successful call is not audited
        assert len(audits(runtime, "Login Failed")) == 2  # the second wrong token is counted, not yet written
    rows = audits(runtime, "Login Failed")  # the web app wrote the count when it stopped
    assert len(rows) == 3
    assert {(r.audit_type, r.user_name, r.computer_ip) for r in rows} == {("System Access", "anonymous", "127.0.0.1")}
    assert "no Authorization header" in rows[0].details and "GET /api/campaigns" in rows[0].details
    assert "wrong bearer token" in rows[1].details
    assert "rejected 1 more time(s)" in rows[2].details and "(last: GET /api/runs/1)" in rows[2].details
    for row in rows:
        assert not any(secret in str(value) for value in row._mapping.values() for secret in (guess, TOKEN))


# --- 4. every scheduler job execution ------------------------------------------------------------------------------


@pytest.mark.parametrize("retention_days", [None, 30])
def test_prune_writes_started_and_completed_even_with_retention_off(make_runtime: Any,
                                                                     retention_days: int | None) -> None:
    runtime = make_runtime(audit={"task_events": True}, scheduler={"retention_days": retention_days})
    jobs.bind(SchedulerService(runtime))
    try:
        jobs.prune()
    finally:
        jobs.bind(None)
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(audit_history).order_by(audit_history.c.audit_id)).all()
    assert [(r.audit_type, r.audit_sub_type) for r in rows] == [("System Task", "Started"),
                                                                 ("System Task", "Completed")]
    assert {r.user_name for r in rows} == {runtime.instance_id}
    if retention_days is None:
        assert rows[0].details == "retention pruning (retention off)"
        assert rows[1].details.startswith("retention pruning (retention off): succeeded in ")
    else:
        assert rows[0].details == "retention pruning"
        assert rows[1].details.startswith("retention pruning: succeeded in ")


def test_prune_writes_nothing_with_task_events_off(make_runtime: Any) -> None:
    runtime = make_runtime(audit={"task_events": False})
    jobs.bind(SchedulerService(runtime))
    try:
        jobs.prune()
    finally:
        jobs.bind(None)
    assert audit_count(runtime) == 0


# --- 5. audit --object NAME -----------------------------------------------------------------------------------------


def test_audit_object_filter_finds_a_campaign_by_name_or_id_through_an_index(harness: Any) -> None:
    from campaignkit.core.audit.queries import AuditFilter, list_audit

    harness.csv("key\na\n")
    campaign_id = harness.create("""
name: Quarterly review
audience: {source: csv, path: audience.csv}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: done}
    - {id: done, type: left_campaign}
""")
    by_name = list_audit(harness.runtime, AuditFilter(object="Quarterly review"))
    by_id = list_audit(harness.runtime, AuditFilter(object=campaign_id))
    assert by_name == by_id and [r["audit_sub_type"] for r in by_name] == ["Created"]
    assert list_audit(harness.runtime, AuditFilter(object="Another review")) == []
    with writing(harness.runtime.engine) as conn:  # an object without an id is found by the name it was given
        record(conn, actor=harness.actor, audit_type=AuditType.FILE_ACCESS, sub_type=AuditSubType.FILE_READ,
               at=harness.runtime.clock.now(), obj=AuditObject(None, "email/welcome/body.html"))
    assert [r["audit_sub_type"] for r in list_audit(harness.runtime, AuditFilter(object="email/welcome/body.html"))
            ] == ["File Read"]
    query = AuditFilter(object="Quarterly review").apply(select(audit_history)).order_by(
        audit_history.c.audit_timestamp.desc()).limit(100)
    engine = harness.runtime.engine
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL's planner picks by table statistics, which a handful of rows cannot show
    compiled = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with reading(engine) as conn:
        plan = " ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + compiled)))
    assert "ix_audit_history_object_id_audit_timestamp" in plan and "SCAN audit_history" not in plan, plan
