"""Scheduled campaigns: one-off and recurring cycles, missed launches, restarts, deadlines, task events."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import select

from campaignkit.core import AudienceError
from campaignkit.core.campaigns import Campaigns
from campaignkit.core.clock import FakeClock
from campaignkit.core.db.schema import audit_history, launches, runs
from campaignkit.core.scheduling import jobs
from campaignkit.core.scheduling.service import JOB_TABLE, SchedulerService

AUDIENCE = "key,email\na,a@example.org\nb,b@example.org\nc,c@example.org\n"


def definition(schedule: str, waits_for_deadline: bool = False) -> str:
    wait = (
        """
    - {id: wait, type: wait_for_event, config: {events: [deadline]}, next: done}"""
        if waits_for_deadline
        else ""
    )
    first_next = "wait" if waits_for_deadline else "done"
    return f"""
name: Quarterly review
audience: {{source: csv, path: audience.csv, key: key}}
schedule: {schedule}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: {first_next}}}{wait}
    - {{id: done, type: left_campaign}}
"""


def audit_subtypes(runtime: Any) -> list[str]:
    with runtime.engine.connect() as conn:
        return list(conn.execute(select(audit_history.c.audit_sub_type).order_by(audit_history.c.audit_id)).scalars())


def launch_rows(runtime: Any, campaign_id: str) -> list[Any]:
    with runtime.engine.connect() as conn:
        return list(conn.execute(select(launches).where(launches.c.campaign_id == campaign_id)
                                 .order_by(launches.c.cycle_at)))


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def clock() -> FakeClock:
    """Three hours behind real time, so that APScheduler (which uses the real clock) sees past cycles as due."""
    return FakeClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3))


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)  # definitions built in tests resolve audience.csv against the working directory


def scheduled_campaign(harness: Any, clock: FakeClock) -> tuple[str, datetime]:
    harness.csv(AUDIENCE)
    start_at = clock.now() + timedelta(minutes=5)
    campaign_id = harness.create(definition(f"{{start_at: '{start_at.isoformat()}'}}"))
    campaign = harness.campaigns
    result = campaign.launch(campaign_id, harness.actor)
    assert result.status == "scheduled" and result.cycle_at == start_at
    assert campaign.get(campaign_id)["state"] == "scheduled"
    assert harness.runs(campaign_id) == []  # no run history until it begins
    return campaign_id, start_at


@pytest.mark.parametrize("grace_hours, expected", [(1, "missed"), (4, "launched")])
def test_launch_missed_while_down_happens_at_startup_only_within_grace(
    harness: Any, clock: FakeClock, grace_hours: int, expected: str
) -> None:
    runtime = harness.runtime
    runtime.settings.scheduler.misfire_grace_seconds = grace_hours * 3600
    campaign_id, start_at = scheduled_campaign(harness, clock)
    clock.set(start_at + timedelta(hours=2, minutes=55))  # nothing ran while the cycle was due
    service = SchedulerService(runtime)
    service.start()
    try:
        wait_until(lambda: launch_rows(runtime, campaign_id)[0].status != "scheduled")
    finally:
        service.shutdown()
    (launch,) = launch_rows(runtime, campaign_id)
    assert launch.status == expected
    if expected == "missed":
        assert harness.runs(campaign_id) == []
        assert "Launch Missed" in audit_subtypes(runtime)
        assert harness.campaigns.get(campaign_id)["state"] == "draft"
    else:
        assert len(harness.runs(campaign_id)) == 3
        assert harness.campaigns.get(campaign_id)["state"] == "in_progress"


def test_restart_keeps_every_schedule(harness: Any) -> None:
    harness.csv(AUDIENCE)
    start_at = datetime.now(UTC) + timedelta(days=30)
    campaign_id = harness.create(definition(f"{{start_at: '{start_at.isoformat()}'}}"))
    launch_id = harness.campaigns.launch(campaign_id, harness.actor).launch_id
    service = SchedulerService(harness.runtime)
    service.start()
    service.shutdown()
    # A different scheduler object on the same job store finds the job without any sync.
    store = SQLAlchemyJobStore(engine=harness.runtime.engine, tablename=JOB_TABLE)
    store.start(None, "default")
    stored = {job.id: job for job in store.get_all_jobs()}
    assert f"launch:{launch_id}" in stored
    assert abs(stored[f"launch:{launch_id}"].next_run_time - start_at) < timedelta(seconds=1)
    assert {"housekeeping:sync", "housekeeping:audit-dispatch", "housekeeping:retention"} <= stored.keys()
    # PostgreSQL's count deltas are folded every minute; SQLite keeps one count row per key and needs no job.
    postgres = harness.runtime.engine.dialect.name == "postgresql"
    assert ("housekeeping:fold-counts" in stored) == postgres


def test_two_schedulers_never_launch_a_cycle_twice(harness: Any, clock: FakeClock, make_runtime: Any) -> None:
    campaign_id, start_at = scheduled_campaign(harness, clock)
    clock.set(start_at + timedelta(seconds=1))
    outcomes: list[str] = []
    others = [make_runtime() for _ in range(3)]  # three processes' worth of runtimes on one database
    barrier = threading.Barrier(len(others))

    def fire(runtime: Any) -> None:
        barrier.wait()
        outcome = Campaigns(runtime).run_cycle(launch_rows(runtime, campaign_id)[0].id, harness.actor,
                                               grace=timedelta(hours=1))
        outcomes.append(outcome.status)

    threads = [threading.Thread(target=fire, args=(rt,)) for rt in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes.count("launched") == 1 and len(outcomes) == 3
    assert len(harness.runs(campaign_id)) == 3
    assert [row.status for row in launch_rows(harness.runtime, campaign_id)] == ["launched"]


def test_recurrence_creates_a_cycle_per_occurrence(harness: Any, clock: FakeClock) -> None:
    harness.csv(AUDIENCE)
    clock.set(datetime(2030, 1, 2, 12, 0, tzinfo=UTC))  # a Wednesday
    campaign_id = harness.create(definition("{cron: '0 9 * * mon', timezone: Europe/Berlin}"))
    first = harness.campaigns.launch(campaign_id, harness.actor)
    assert first.status == "scheduled"
    assert first.cycle_at == datetime(2030, 1, 7, 8, 0, tzinfo=UTC)  # 09:00 in Berlin (CET, UTC+1)
    for week in range(3):
        clock.set(first.cycle_at + timedelta(weeks=week, seconds=2))
        (outcome,) = harness.campaigns.launch_due(harness.actor)
        assert outcome.status == "launched" and outcome.target_count == 3
        harness.run_to_idle()
        assert harness.campaigns.get(campaign_id)["state"] == "scheduled"  # idle until the next cycle
    rows = launch_rows(harness.runtime, campaign_id)
    assert [r.status for r in rows] == ["launched", "launched", "launched", "scheduled"]
    assert [r.cycle_at for r in rows] == [first.cycle_at + timedelta(weeks=w) for w in range(4)]
    per_cycle: dict[int, int] = {}
    for run in harness.runs(campaign_id):
        assert run.status == "completed"
        per_cycle[run.launch_id] = per_cycle.get(run.launch_id, 0) + 1
    assert list(per_cycle.values()) == [3, 3, 3]


def test_deadline_notifies_unfinished_runs(harness: Any, clock: FakeClock) -> None:
    harness.csv(AUDIENCE)
    campaign_id = harness.create(definition("{end_after: P14D}", waits_for_deadline=True))
    result = harness.campaigns.launch(campaign_id, harness.actor)
    harness.run_to_idle()
    assert {r.status for r in harness.runs(campaign_id)} == {"waiting"}
    (launch,) = launch_rows(harness.runtime, campaign_id)
    assert launch.deadline_at == result.cycle_at + timedelta(days=14)
    clock.set(launch.deadline_at)
    assert harness.campaigns.cycle_deadline(launch.id, harness.actor) == 3
    assert harness.campaigns.cycle_deadline(launch.id, harness.actor) == 0  # applied once
    harness.run_to_idle()
    assert {r.status for r in harness.runs(campaign_id)} == {"completed"}
    assert harness.campaigns.get(campaign_id)["state"] == "completed"
    assert "Deadline Reached" in audit_subtypes(harness.runtime)


def test_a_deadline_ends_runs_of_a_workflow_that_does_not_wait_for_it(harness: Any, clock: FakeClock) -> None:
    harness.csv(AUDIENCE)
    campaign_id = harness.create(definition("{end_after: P14D}").replace(
        "next: done}", "next: wait}\n    - {id: wait, type: wait_for_event, config: {events: [clicked]}, next: done}"))
    harness.campaigns.launch(campaign_id, harness.actor)
    harness.run_to_idle()
    assert {r.status for r in harness.runs(campaign_id)} == {"waiting"}
    (launch,) = launch_rows(harness.runtime, campaign_id)
    clock.set(launch.deadline_at)
    assert harness.campaigns.cycle_deadline(launch.id, harness.actor) == 3
    ended = harness.runs(campaign_id)
    assert {(r.status, r.error) for r in ended} == {("terminated", "ended at the cycle's deadline")}
    assert harness.campaigns.get(campaign_id)["state"] == "completed"
    assert audit_subtypes(harness.runtime)[-2:] == ["Deadline Reached", "Workflow Completed"]


def test_the_scheduler_applies_the_deadline_of_a_cycle_launched_elsewhere(harness: Any, clock: FakeClock) -> None:
    harness.csv(AUDIENCE)
    campaign_id = harness.create(definition("{end_after: PT1H}", waits_for_deadline=True))
    harness.campaigns.launch(campaign_id, harness.actor)  # as `campaignkit campaign launch` does, no scheduler
    harness.run_to_idle()
    clock.advance(timedelta(hours=1))
    # The deadline (fake now) is two hours behind real time: the scheduler's job is due as soon as sync adds it.
    service = SchedulerService(harness.runtime)
    service.start()
    try:
        wait_until(lambda: launch_rows(harness.runtime, campaign_id)[0].ended_at is not None)
    finally:
        service.shutdown()
    harness.run_to_idle()
    assert {r.status for r in harness.runs(campaign_id)} == {"completed"}
    assert harness.campaigns.get(campaign_id)["state"] == "completed"


@pytest.mark.parametrize("enabled", [True, False])
def test_task_events_switch(make_runtime: Any, enabled: bool) -> None:
    runtime = make_runtime(audit={"task_events": enabled})
    service = SchedulerService(runtime)
    jobs.bind(service)
    try:
        jobs.sync_launches()
        jobs.dispatch_audit()
    finally:
        jobs.bind(None)
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(audit_history.c.audit_type, audit_history.c.audit_sub_type,
                                   audit_history.c.details, audit_history.c.class_name,
                                   audit_history.c.assembly_name).order_by(audit_history.c.audit_id)).all()
    if not enabled:
        assert rows == []
        return
    assert [(r.audit_type, r.audit_sub_type) for r in rows] == [("System Task", "Started"),
                                                                 ("System Task", "Completed")] * 2
    assert rows[1].details.startswith("sync scheduled launches: succeeded in ")
    # The job's own code is named, not the type of a Python function.
    assert (rows[0].class_name, rows[0].assembly_name) == (
        "campaignkit.core.scheduling.jobs.sync_launches",
        "campaignkit",
    )


def test_a_rolled_back_launch_leaves_no_audit_record(harness: Any) -> None:
    harness.csv("key,email\na,a@example.org\n,missing-key@example.org\n")
    campaign_id = harness.create(definition("null"))
    before = audit_subtypes(harness.runtime)
    with pytest.raises(AudienceError, match=r"audience\.csv:3"):
        harness.campaigns.launch(campaign_id, harness.actor)
    assert audit_subtypes(harness.runtime) == before == ["Created"]
    with harness.runtime.engine.connect() as conn:
        assert conn.execute(select(runs.c.id)).first() is None
        assert conn.execute(select(launches.c.id)).first() is None


def test_pause_parks_runs_and_schedule_and_resume_restarts_them(harness: Any, clock: FakeClock) -> None:
    from campaignkit.core.engine.events import send_event

    harness.csv(AUDIENCE)
    yaml_text = """
name: Paused journey
audience: {source: csv, path: audience.csv, key: key}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked], timeout: PT1H}, edges: {next: done, timeout: done}}
    - {id: done, type: left_campaign}
"""
    campaign_id = harness.create(yaml_text)
    harness.campaigns.launch(campaign_id, harness.actor)
    harness.run_to_idle()
    first = harness.runs(campaign_id)[0]
    assert harness.campaigns.pause(campaign_id, harness.actor) == 3
    assert harness.campaigns.get(campaign_id)["state"] == "paused"
    send_event(harness.runtime, first.id, "clicked")
    clock.advance(timedelta(hours=2))  # past every timeout: still nothing may move
    assert harness.run_to_idle().claimed == 0
    assert {r.status for r in harness.runs(campaign_id)} == {"waiting"}

    assert harness.campaigns.resume(campaign_id, harness.actor) == 3
    assert harness.campaigns.get(campaign_id)["state"] == "in_progress"
    harness.run_to_idle()
    by_key = {r.target_key: r for r in harness.runs(campaign_id)}
    assert {r.status for r in by_key.values()} == {"completed"}
    edges = {s.node_id: s.edge for s in harness.steps(by_key[first.target_key].id)}
    assert edges["wait"] == "next"  # the event sent while paused was kept and taken on resume
    assert {s.node_id: s.edge for s in harness.steps(by_key["b"].id)}["wait"] == "timeout"
    assert {"Workflow Pause Request", "Workflow Resume Request"} <= set(audit_subtypes(harness.runtime))


def test_pausing_holds_a_scheduled_cycle(harness: Any, clock: FakeClock) -> None:
    campaign_id, start_at = scheduled_campaign(harness, clock)
    harness.campaigns.pause(campaign_id, harness.actor)
    clock.set(start_at + timedelta(minutes=1))
    assert harness.campaigns.launch_due(harness.actor) == []
    harness.campaigns.resume(campaign_id, harness.actor)
    assert harness.campaigns.get(campaign_id)["state"] == "scheduled"
    (outcome,) = harness.campaigns.launch_due(harness.actor)
    assert outcome.status == "launched"


def test_retention_prunes_the_ledger_of_long_finished_runs_only(harness: Any, clock: FakeClock) -> None:
    from campaignkit.core.scheduling.housekeeping import prune_step_records

    harness.csv(AUDIENCE)
    campaign_id = harness.create(definition("null"))
    harness.campaigns.launch(campaign_id, harness.actor, audience=harness.folder / "audience.csv")
    harness.run_to_idle()
    finished = harness.runs(campaign_id)
    assert all(len(harness.steps(r.id)) == 2 for r in finished)
    clock.advance(timedelta(days=29))
    assert prune_step_records(harness.runtime, older_than=timedelta(days=30)) == 0
    clock.advance(timedelta(days=2))
    assert prune_step_records(harness.runtime, older_than=timedelta(days=30)) == 6
    assert all(harness.steps(r.id) == [] for r in finished)
    assert {r.status for r in harness.runs(campaign_id)} == {"completed"}  # the runs themselves stay
    assert "File Import" in audit_subtypes(harness.runtime)
