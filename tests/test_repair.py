"""Repair: runs that cannot progress are found (a dry run changes nothing), fixed, audited, and then finish.

Each stuck state is made the way it arises: a worker process killed while it holds runs, a worker that claimed runs
and never came back, a live edit, a campaign version whose plugin is gone, and the two races of PostgreSQL's
concurrent writers that leave a campaign's state and its runs crossed (replayed step by step with real workers, a
real retry and a real termination; SQLite serialises writers, and the same steps leave nothing to repair there).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import Cli, as_json, make_cli
from conftest import Harness
from servers import serving
from sqlalchemy import select, text, update

from campaignkit.core import StepContext, StepError, StepResult, StepType, create_app, hookimpl
from campaignkit.core.audit import Actor
from campaignkit.core.campaigns import retry as retry_module
from campaignkit.core.campaigns.repair import (
    BROKEN_VERSION,
    ENDED_CAMPAIGN,
    LEASE,
    MISSING_NODE,
    OVERDUE,
    UNFINISHED_CAMPAIGN,
    Report,
    find_stuck,
    held_runs,
    overdue_runs,
    repair,
)
from campaignkit.core.campaigns.retry import RetrySelection, retry_runs
from campaignkit.core.db import reading, writing
from campaignkit.core.db.schema import campaigns, runs
from campaignkit.core.engine.events import send_event
from campaignkit.core.engine.worker import Worker
from campaignkit.core.runtime import Runtime
from campaignkit.core.scheduling import jobs
from campaignkit.core.scheduling.service import SchedulerService
from campaignkit.core.settings import load_settings

WAITING = """
name: NAME
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: gate}
    - {id: gate, type: gate, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: done}}
    - {id: done, type: left_campaign}
"""
# The same campaign edited live: the node its runs wait at is gone, another asks for a reply instead.
EDITED = """
name: NAME
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: gate}
    - {id: gate, type: gate, next: ask}
    - {id: ask, type: wait_for_event, config: {events: [replied]}, edges: {replied: done}}
    - {id: done, type: left_campaign}
"""
MAPPED = """
  node_mappings: {wait: ask}
"""
# After `wait`, a survey; edited live into a poll (with or without a mapping from the one to the other).
SURVEYED = """
name: NAME
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: gate}
    - {id: gate, type: gate, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: survey}}
    - {id: survey, type: wait_for_event, config: {events: [answered]}, edges: {answered: done}}
    - {id: done, type: left_campaign}
"""
POLLED = SURVEYED.replace("survey", "poll")
MAPPED_SURVEY = """
  node_mappings: {survey: poll}
"""
# The same without the test's own step type, for the command (whose process has only the installed plugins).
PLAIN = """
name: Welcome
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: done}}
    - {id: done, type: left_campaign}
"""
KEYS = "key\na\nb\nc\n"


class Gates:
    """A `gate` step type that fails the targets named in ``broken`` (as a template or a setting not yet fixed)."""

    __name__ = "gates"

    def __init__(self) -> None:
        self.broken: set[str] = set()
        gates = self

        class Gate(StepType):
            name = "gate"

            def execute(self, ctx: StepContext) -> StepResult:
                if ctx.target_key in gates.broken:
                    raise StepError(f"gate closed for {ctx.target_key}", temporary=False)
                return StepResult(edge="next")

        self.step = Gate

    @hookimpl
    def register_step_types(self) -> list[type[StepType]]:
        return [self.step]


@pytest.fixture
def gates() -> Gates:
    return Gates()


@pytest.fixture
def harness(make_runtime: Any, actor: Actor, tmp_path: Path, gates: Gates) -> Iterator[Harness]:
    made = Harness(make_runtime(extra_plugins=(gates,), worker={"batch_size": 1}), actor, tmp_path)
    yield made
    made.close()


def launched(harness: Harness, name: str, keys: str = KEYS, flow: str = WAITING) -> str:
    campaign_id = harness.create(flow.replace("NAME", name))
    harness.launch(campaign_id, harness.csv(keys, f"{name}.csv"))
    return campaign_id


def state(runtime: Runtime) -> tuple[list[Any], list[Any]]:
    """Everything repair could change: the runs and the campaigns, as stored."""
    with reading(runtime.engine) as conn:
        return (list(conn.execute(select(runs).order_by(runs.c.id))),
                list(conn.execute(select(campaigns).order_by(campaigns.c.id))))


def statuses(harness: Harness, campaign_id: str) -> dict[str, str]:
    return {run.target_key: run.status for run in harness.runs(campaign_id)}


def campaign_state(harness: Harness, campaign_id: str) -> str:
    return str(harness.campaigns.get(campaign_id)["state"])


def dry_run(harness: Harness, **options: Any) -> Report:
    """A dry run, asserting that it changed nothing and wrote no audit record."""
    before, audited = state(harness.runtime), len(harness.audit())
    report = repair(harness.runtime, harness.actor, dry_run=True, **options)
    assert state(harness.runtime) == before and len(harness.audit()) == audited
    return report


def kinds(report: Report) -> list[tuple[str, str, int]]:
    return [(f.kind, f.campaign, f.runs) for f in report.findings]


def repaired(harness: Harness) -> list[tuple[str, str]]:
    return [(r.object_name, r.details) for r in harness.audit("Runs Repaired")]


def click(harness: Harness, campaign_id: str, event: str = "clicked") -> None:
    for run in harness.runs(campaign_id):
        if run.status == "waiting":
            send_event(harness.runtime, run.id, event)
    harness.run_to_idle()


# --- a healthy database ----------------------------------------------------------------------------------------------


def test_nothing_is_found_on_a_healthy_database_and_nothing_is_audited(harness: Harness, clock: Any) -> None:
    waiting = launched(harness, "Waiting")
    finished = launched(harness, "Finished", "key\nx\n")
    paused = launched(harness, "Paused")
    scheduled = harness.create(WAITING.replace("NAME", "Later"))
    harness.campaigns.launch(scheduled, harness.actor, at=clock.now() + timedelta(days=3))
    harness.run_to_idle()
    click(harness, finished)
    harness.campaigns.pause(paused, harness.actor)
    harness.create(WAITING.replace("NAME", "Draft"))
    clock.advance(timedelta(days=2))  # open-ended waits and a paused campaign are not stuck, however long they last
    assert statuses(harness, waiting) == {"a": "waiting", "b": "waiting", "c": "waiting"}
    assert campaign_state(harness, finished) == "completed"

    assert dry_run(harness).findings == []
    report = repair(harness.runtime, harness.actor)
    assert report.findings == [] and repaired(harness) == []


# --- workers that are gone ---------------------------------------------------------------------------------------


def test_runs_a_worker_claimed_before_it_vanished_are_released_once_its_hold_ran_out(harness: Harness,
                                                                                      clock: Any) -> None:
    campaign_id = launched(harness, "Held")
    # A worker on another host claims a run and is never heard of again (its host went away mid-batch).
    gone = Worker(harness.runtime, worker_id="web-7:4242:0badc0de")
    (held,) = gone._claim(clock.now())
    harness.run_to_idle()  # the other two go on
    clock.advance(timedelta(minutes=3))
    assert dry_run(harness).findings == []  # still inside its hold (worker.lease_seconds, 300): it may yet write back

    clock.advance(timedelta(minutes=4))
    (finding,) = dry_run(harness).findings
    assert (finding.kind, finding.runs, finding.safe) == (LEASE, 1, True)
    assert finding.detail.startswith("worker web-7:4242:0badc0de: its hold ran out at 2030-01-07 09:05:00 UTC")
    assert finding.action == "release them to the next worker"

    repair(harness.runtime, harness.actor)
    (run,) = [r for r in harness.runs(campaign_id) if r.id == held.id]
    assert run.lease_owner is None and run.lease_token == held.lease_token + 1  # its late results would be dropped
    assert repaired(harness) == [("Held", f"released 1 run(s) held by {finding.detail}")]
    harness.run_to_idle()
    click(harness, campaign_id)
    assert statuses(harness, campaign_id) == {"a": "completed", "b": "completed", "c": "completed"}
    assert campaign_state(harness, campaign_id) == "completed"
    assert dry_run(harness).findings == []


def test_runs_no_worker_takes_are_reported_and_left_to_a_worker(harness: Harness, clock: Any) -> None:
    campaign_id = launched(harness, "Unworked")
    clock.advance(timedelta(minutes=11))
    (finding,) = dry_run(harness).findings
    assert (finding.kind, finding.runs, finding.safe) == (OVERDUE, 3, False)
    assert finding.detail == "the oldest due since 2030-01-07 09:00:00 UTC (11 min ago)"
    assert finding.action == "none: start a worker, or add workers"
    assert repair(harness.runtime, harness.actor).findings[0].fixed == 0 and repaired(harness) == []
    harness.run_to_idle()
    assert dry_run(harness).findings == [] and set(statuses(harness, campaign_id).values()) == {"waiting"}


WORKER = Path(__file__).with_name("worker_process.py")


@pytest.mark.slow
def test_a_killed_worker_s_runs_are_released_at_once_and_finish(make_runtime: Any, actor: Actor,
                                                                 tmp_path: Path) -> None:
    from test_recovery import launch, logged, start_worker, wait_for

    runtime = launch(make_runtime, lambda rt: Harness(rt, actor, tmp_path), 120)
    harness = Harness(runtime, actor, tmp_path)
    log = tmp_path / "keys.log"
    first = start_worker(runtime, log, lease=300, sleep=0.05, until_idle=False, batch=40)
    try:
        wait_for(lambda: len(logged(log)) >= 10, 60, "the worker to be mid-batch")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    with reading(runtime.engine) as conn:
        held = conn.execute(select(runs.c.lease_owner).where(runs.c.lease_owner.is_not(None))).scalars().all()
    assert len(held) == 40 and set(held) == {held[0]} and held[0].startswith(f"{socket.gethostname()}:{first.pid}:")

    # Its lease has five minutes to run; its process is gone from this host, so repair need not wait for them.
    (finding,) = dry_run(harness).findings
    assert (finding.kind, finding.runs) == (LEASE, 40)
    assert finding.detail == f"worker {held[0]}: its process is not running on this host"
    report = repair(runtime, actor)
    assert report.findings[0].fixed == 40
    assert repaired(harness) == [("Recovery", f"released 40 run(s) held by {finding.detail}")]

    second = start_worker(runtime, log, lease=300, sleep=0, until_idle=True)
    try:
        _, stderr = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, stderr.decode()[-2000:]
    assert {run.status for run in harness.runs(report.findings[0].campaign_id)} == {"completed"}
    assert len(harness.runs(report.findings[0].campaign_id)) == 120


# --- nodes and versions ------------------------------------------------------------------------------------------


def edit(harness: Harness, campaign_id: str, flow: str, name: str) -> None:
    from campaignkit.core.definitions.loader import load_definition_text

    loaded = load_definition_text(flow.replace("NAME", name), "edited.yaml", harness.runtime.settings.definitions,
                                  harness.runtime.kinds)
    harness.campaigns.update(campaign_id, loaded, harness.actor)


def test_a_live_edit_that_removes_the_node_runs_wait_at_strands_none_of_them(harness: Harness) -> None:
    kept = launched(harness, "Kept")
    mapped = launched(harness, "Remapped")
    harness.run_to_idle()
    edit(harness, kept, EDITED, "Kept")  # no mapping: the runs at `wait` stay on the version that has it
    edit(harness, mapped, EDITED + MAPPED, "Remapped")  # they move onto the new version, at `ask`
    assert {(r.version_id, r.current_node) for r in harness.runs(mapped)} == {
        (harness.campaigns.get(mapped)["current_version_id"], "ask")}
    assert dry_run(harness).findings == []  # neither strands a run, though neither cycle's first version has `ask`
    harness.run_to_idle()
    click(harness, kept)
    click(harness, mapped, "replied")
    for campaign_id, path in ((kept, {"start", "gate", "wait", "done"}), (mapped, {"start", "gate", "wait", "ask",
                                                                                   "done"})):
        assert set(statuses(harness, campaign_id).values()) == {"completed"}
        assert {step.node_id for step in harness.steps(harness.runs(campaign_id)[0].id)} == path
    assert dry_run(harness).findings == []


def caught_by_an_edit(harness: Harness, name: str, edited: str) -> str:
    """Runs standing at `survey` on a version without it. A live edit leaves the runs a worker holds on their
    version (the worker writes back the next node of the workflow it ran), so here the runs are clicked at `wait`,
    taken by a worker, the campaign edited (it keeps `wait` and replaces `survey` with `poll`) and the worker writes
    them back on their own version; then they are put on the new version by hand, as a changed database or an
    older release could leave them."""
    campaign_id = launched(harness, name, flow=SURVEYED)
    harness.run_to_idle()
    for run in harness.runs(campaign_id):
        send_event(harness.runtime, run.id, "clicked")
    worker = Worker(harness.runtime)
    taken = [row for _ in range(3) for row in worker._claim(harness.runtime.clock.now())]
    before = {r.version_id for r in harness.runs(campaign_id)}
    edit(harness, campaign_id, edited, name)
    worker._process(taken)  # on the version it took them on: `wait` -> `survey`, and waits there
    assert {(r.version_id, r.current_node, r.status) for r in harness.runs(campaign_id)} == {
        (*before, "survey", "waiting")}  # the edit did not move runs a worker held
    version = harness.campaigns.get(campaign_id)["current_version_id"]
    with writing(harness.runtime.engine) as conn:
        conn.execute(update(runs).where(runs.c.campaign_id == campaign_id).values(version_id=version))
    return campaign_id


def test_runs_a_live_edit_caught_mid_step_move_where_the_version_s_mapping_says_and_finish(harness: Harness) -> None:
    campaign_id = caught_by_an_edit(harness, "Mapped", POLLED + MAPPED_SURVEY)
    (finding,) = dry_run(harness).findings
    assert (finding.kind, finding.runs, finding.safe) == (MISSING_NODE, 3, True)
    assert finding.detail == "node 'survey', which version 1.1 does not have"
    assert finding.action == "move them to node 'poll' (the version's node mapping)"
    jobs.bind(SchedulerService(harness.runtime))
    try:
        jobs.repair_runs()  # safe: the scheduler's job does it
    finally:
        jobs.bind(None)
    assert {(r.status, r.current_node) for r in harness.runs(campaign_id)} == {("active", "poll")}
    assert [(r.user_name, r.details) for r in harness.audit("Runs Repaired")] == [
        (harness.runtime.instance_id, "moved 3 run(s) from node 'survey', which version 1.1 does not have, to node "
                                      "'poll', as the version's node mapping says")]
    harness.run_to_idle()
    click(harness, campaign_id, "answered")
    assert statuses(harness, campaign_id) == {"a": "completed", "b": "completed", "c": "completed"}
    assert campaign_state(harness, campaign_id) == "completed"


def test_runs_at_a_node_no_mapping_names_end_as_failed_only_when_a_person_asks(harness: Harness) -> None:
    campaign_id = caught_by_an_edit(harness, "Unmapped", POLLED)
    (finding,) = dry_run(harness).findings
    assert (finding.action, finding.safe) == ("end them as failed, saying why (no node mapping names the node)", False)
    jobs.bind(SchedulerService(harness.runtime))
    try:
        jobs.repair_runs()  # the scheduler's safe part leaves them
    finally:
        jobs.bind(None)
    assert set(statuses(harness, campaign_id).values()) == {"waiting"} and repaired(harness) == []

    (finding,) = repair(harness.runtime, harness.actor).findings
    assert finding.fixed == 3
    ended = harness.runs(campaign_id)
    assert {(r.status, r.error) for r in ended} == {
        ("failed", "survey: not a node of this run's campaign version; ended by repair")}
    assert campaign_state(harness, campaign_id) == "completed"
    assert [r.details for r in harness.audit("Workflow Completed")] == ["every run finished (found by repair)"]
    assert dry_run(harness).findings == []


def test_a_new_version_that_maps_the_node_takes_them_on_instead(harness: Harness) -> None:
    campaign_id = caught_by_an_edit(harness, "Edited twice", POLLED)
    assert [f.kind for f in dry_run(harness).findings] == [MISSING_NODE]
    edit(harness, campaign_id, POLLED + MAPPED_SURVEY, "Edited twice")  # they are in progress: the edit moves them
    assert dry_run(harness).findings == []
    assert {(r.current_node, r.status) for r in harness.runs(campaign_id)} == {("poll", "active")}
    harness.run_to_idle()
    click(harness, campaign_id, "answered")
    assert set(statuses(harness, campaign_id).values()) == {"completed"}


def test_another_source_of_node_mappings_plugs_in(harness: Harness) -> None:
    campaign_id = caught_by_an_edit(harness, "Hooked", POLLED)
    (finding,) = repair(harness.runtime, harness.actor, node_mappings=lambda definition: {"survey": "poll"}).findings
    assert finding.fixed == 3 and {r.current_node for r in harness.runs(campaign_id)} == {"poll"}


def test_runs_of_a_version_whose_plugin_is_gone_are_reported_and_left_where_they_are(
        make_runtime: Any, harness: Harness) -> None:
    campaign_id = launched(harness, "Plugged")
    harness.run_to_idle()
    # The same database, served by a process where the plugin with the `gate` step type is not installed.
    without = Harness(make_runtime(), harness.actor, harness.folder)
    (finding,) = dry_run(without).findings
    assert (finding.kind, finding.campaign, finding.runs, finding.safe) == (BROKEN_VERSION, "Plugged", 3, False)
    assert finding.detail.startswith("version 1.0: ") and "gate" in finding.detail
    assert finding.action == "none: load the plugin it needs again, or terminate the campaign"
    repair(without.runtime, without.actor)
    assert set(statuses(harness, campaign_id).values()) == {"waiting"} and repaired(harness) == []
    assert dry_run(harness).findings == []  # where the plugin is loaded, nothing is wrong
    without.close()


# --- campaigns whose state crossed their runs' ---------------------------------------------------------------------


def blocked_on_a_lock(runtime: Runtime) -> bool:
    with runtime.engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND wait_event_type = 'Lock'")).scalar())


def paused_retry(harness: Harness, campaign_id: str,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Thread, threading.Event]:
    """A retry of the campaign's failed runs in a thread, stopped inside its transaction after its runs are due again
    and the campaign was reopened if it was completed: (thread, release)."""
    reached, release = threading.Event(), threading.Event()
    reopen = retry_module._reopen

    def reopen_then_wait(conn: Any, cid: str, now: Any) -> None:
        reopen(conn, cid, now)
        reached.set()
        assert release.wait(30)

    monkeypatch.setattr(retry_module, "_reopen", reopen_then_wait)
    thread = threading.Thread(target=retry_runs, args=(harness.runtime, campaign_id, harness.actor,
                                                       RetrySelection()))
    thread.start()
    assert reached.wait(30)
    return thread, release


def crossing(harness: Harness, other: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch, gates: Gates) -> str:
    """Run `a` failed, `b` waiting and clicked; then a retry of `a` and ``other(campaign_id)`` cross: the retry stops
    inside its transaction, ``other`` starts and runs until it waits for the retry, then both finish."""
    gates.broken = {"a"}
    campaign_id = launched(harness, "Crossed", "key\na\nb\n")
    harness.run_to_idle()
    assert statuses(harness, campaign_id) == {"a": "failed", "b": "waiting"}
    gates.broken = set()  # what failed `a` is fixed: it is retried
    send_event(harness.runtime, harness.runs(campaign_id)[1].id, "clicked")
    retry, release = paused_retry(harness, campaign_id, monkeypatch)
    crossing_thread = threading.Thread(target=other, args=(campaign_id,))
    crossing_thread.start()
    if harness.runtime.engine.dialect.name == "postgresql":
        deadline = time.monotonic() + 30
        while not blocked_on_a_lock(harness.runtime):  # it waits for the retry's audit record: the chain's head
            assert time.monotonic() < deadline, "the crossing change never reached the audit chain"
            time.sleep(0.02)
    else:
        crossing_thread.join(0.5)
        assert crossing_thread.is_alive()  # SQLite: it waits for the retry's transaction to end, before it reads
    release.set()
    retry.join(30)
    crossing_thread.join(30)
    assert not retry.is_alive() and not crossing_thread.is_alive()
    return campaign_id


def test_a_campaign_completed_while_a_retry_crossed_its_last_run_is_put_back_in_progress(
        harness: Harness, monkeypatch: pytest.MonkeyPatch, gates: Gates) -> None:
    campaign_id = crossing(harness, lambda _: harness.worker.run_once(), monkeypatch, gates)
    if harness.runtime.engine.dialect.name == "sqlite":
        assert campaign_state(harness, campaign_id) == "in_progress"  # the worker saw the retried run
        assert dry_run(harness).findings == []
    else:
        # The worker completed the campaign on a snapshot without the retried run; the retry's reopen came first.
        assert campaign_state(harness, campaign_id) == "completed"
        assert statuses(harness, campaign_id) == {"a": "active", "b": "completed"}
        (finding,) = dry_run(harness).findings
        assert (finding.kind, finding.runs, finding.safe) == (ENDED_CAMPAIGN, 1, True)
        assert finding.detail == "the campaign is completed; 1 run(s) are not finished"
        repair(harness.runtime, harness.actor)
        assert campaign_state(harness, campaign_id) == "in_progress"
        assert repaired(harness) == [("Crossed", "put the campaign back in progress: it was completed while 1 run(s) "
                                                 "were unfinished")]
    harness.run_to_idle()
    click(harness, campaign_id)
    assert statuses(harness, campaign_id) == {"a": "completed", "b": "completed"}
    assert campaign_state(harness, campaign_id) == "completed" and dry_run(harness).findings == []


def test_runs_a_retry_revived_while_the_campaign_was_terminated_are_ended(
        harness: Harness, monkeypatch: pytest.MonkeyPatch, gates: Gates) -> None:
    campaign_id = crossing(harness, lambda cid: harness.campaigns.terminate(cid, harness.actor), monkeypatch, gates)
    assert campaign_state(harness, campaign_id) == "terminated"
    if harness.runtime.engine.dialect.name == "sqlite":
        assert statuses(harness, campaign_id) == {"a": "terminated", "b": "terminated"}
        assert dry_run(harness).findings == []
        return
    assert statuses(harness, campaign_id) == {"a": "active", "b": "terminated"}
    (finding,) = dry_run(harness).findings
    assert (finding.kind, finding.runs, finding.action) == (ENDED_CAMPAIGN, 1,
                                                            "end these runs as terminated, as the termination meant")
    repair(harness.runtime, harness.actor)
    assert statuses(harness, campaign_id) == {"a": "terminated", "b": "terminated"}
    assert repaired(harness) == [("Crossed", "ended 1 unfinished run(s) as terminated: the campaign was terminated")]
    assert harness.run_to_idle().claimed == 0 and dry_run(harness).findings == []


def test_a_campaign_whose_last_runs_finished_on_two_workers_at_once_is_completed(harness: Harness) -> None:
    campaign_id = launched(harness, "Two", "key\na\nb\n")
    harness.run_to_idle()
    for run in harness.runs(campaign_id):
        send_event(harness.runtime, run.id, "clicked")
    first, second = Worker(harness.runtime), Worker(harness.runtime)  # a batch of one run each
    reached, release = threading.Event(), threading.Event()
    complete = first._complete_campaigns

    def complete_then_wait(conn: Any, campaign_ids: Any, now: Any) -> Any:
        done = complete(conn, campaign_ids, now)
        reached.set()
        assert release.wait(30)
        return done

    first._complete_campaigns = complete_then_wait  # type: ignore[method-assign]
    one = threading.Thread(target=first.run_once)
    one.start()
    assert reached.wait(30)
    two = threading.Thread(target=second.run_once)
    two.start()
    two.join(1 if harness.runtime.engine.dialect.name == "sqlite" else 30)
    postgres = harness.runtime.engine.dialect.name == "postgresql"
    assert two.is_alive() != postgres  # SQLite: the second waits for the first's transaction
    release.set()
    one.join(30)
    two.join(30)
    assert statuses(harness, campaign_id) == {"a": "completed", "b": "completed"}
    if not postgres:
        assert campaign_state(harness, campaign_id) == "completed" and dry_run(harness).findings == []
        return
    # Each saw the other's run unfinished: the campaign stays in progress with nothing left to run.
    assert campaign_state(harness, campaign_id) == "in_progress" and harness.audit("Workflow Completed") == []
    (finding,) = dry_run(harness).findings
    assert (finding.kind, finding.runs, finding.safe) == (UNFINISHED_CAMPAIGN, 0, True)
    jobs.bind(SchedulerService(harness.runtime))
    try:
        jobs.repair_runs()  # the scheduler's job does it
    finally:
        jobs.bind(None)
    assert campaign_state(harness, campaign_id) == "completed"
    (done,) = harness.audit("Runs Repaired")
    assert (done.user_name, done.audit_type, done.object_name, done.details) == (
        harness.runtime.instance_id, "Operations", "Two",
        "set the campaign completed: it was in progress with no unfinished run")
    assert [r.details for r in harness.audit("Workflow Completed")] == ["every run finished (found by repair)"]


# --- the scheduler's job -----------------------------------------------------------------------------------------


def test_the_job_audits_what_it_fixed_and_nothing_when_nothing_was_fixed(harness: Harness, clock: Any) -> None:
    campaign_id = launched(harness, "Job")
    harness.run_to_idle()
    clicked = harness.runs(campaign_id)[0]
    send_event(harness.runtime, clicked.id, "clicked")
    assert [run.id for run in Worker(harness.runtime, worker_id="db-2:77:feedface")._claim(clock.now())] == [
        clicked.id]
    clock.advance(timedelta(minutes=7))
    jobs.bind(SchedulerService(harness.runtime))
    try:
        jobs.repair_runs()
        jobs.repair_runs()  # nothing left: no second record
    finally:
        jobs.bind(None)
    (record,) = harness.audit("Runs Repaired")
    assert (record.user_name, record.audit_type, record.object_id) == (harness.runtime.instance_id, "Operations",
                                                                        campaign_id)
    assert record.details.startswith("released 1 run(s) held by worker db-2:77:feedface: its hold ran out at")
    harness.run_to_idle()
    assert statuses(harness, campaign_id) == {"a": "completed", "b": "waiting", "c": "waiting"}


def test_the_scan_reads_held_and_overdue_runs_through_the_due_time_index(harness: Harness, clock: Any) -> None:
    launched(harness, "Plan", "key\n" + "".join(f"k{i}\n" for i in range(40)))
    harness.run_to_idle()  # as most runs of a real database: finished, or waiting with no due time
    launched(harness, "Due")
    engine = harness.runtime.engine
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        conn.execute(text("ANALYZE runs"))
        if postgres:  # a test-sized table is read whole whatever the indexes; ask what the planner can use
            conn.execute(text("SET LOCAL enable_seqscan = off"))
        for statement in (held_runs(clock.now()), overdue_runs(clock.now())):
            compiled = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
            plan = " ".join(str(row[-1]) for row in conn.execute(
                text(f"{'EXPLAIN' if postgres else 'EXPLAIN QUERY PLAN'} {compiled}")))
            assert "ix_runs_due_at" in plan, plan


# --- the command and the API -------------------------------------------------------------------------------------


def dead_worker_id() -> str:
    """The name a worker process of this host had, whose process has ended."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    return f"{socket.gethostname()}:{ended.pid}:c0ffee00"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Cli:
    run = make_cli(monkeypatch, tmp_path, database_url)
    run("init")
    return run


def test_the_command_says_what_it_would_do_then_does_it(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "welcome.yaml").write_text(PLAIN)
    (tmp_path / "people.csv").write_text(KEYS)
    cli("campaign", "create", "welcome.yaml")
    cli("campaign", "launch", "Welcome", "--audience", "people.csv")
    runtime = Runtime(load_settings())
    try:
        owner = dead_worker_id()
        assert len(Worker(runtime, worker_id=owner)._claim(runtime.clock.now())) == 3
    finally:
        runtime.close()

    shown = cli("runs", "repair", "--dry-run").stdout
    assert "Stuck runs: what repair would do (nothing changed)" in shown and "abandoned_lease" in shown
    assert "A worker took these runs and is gone" in shown and "without --dry-run" in shown
    found = as_json(cli("runs", "repair", "--dry-run", "--campaign", "Welcome", "--format", "json"))
    assert found["dry_run"] is True
    assert [(f["kind"], f["campaign"], f["runs"], f["detail"], f["fixed"]) for f in found["findings"]] == [
        (LEASE, "Welcome", 3, f"worker {owner}: its process is not running on this host", 0)]
    assert cli("runs", "repair", "--campaign", "Nope", code=1).stderr.strip() == "error: no campaign 'Nope'"

    done = as_json(cli("runs", "repair", "--format", "json"))
    assert [(f["fixed"], f["result"]) for f in done["findings"]] == [
        (3, f"released 3 run(s) held by worker {owner}: its process is not running on this host")]
    assert "nothing is stuck" in cli("runs", "repair").stdout
    cli("work", "--until-idle")
    assert {r["status"] for r in as_json(cli("runs", "Welcome", "--format", "json"))} == {"waiting"}
    assert len(as_json(cli("runs", "list", "Welcome", "--format", "json"))) == 3
    audited = as_json(cli("audit", "--sub-type", "Runs Repaired", "--format", "json"))
    assert [(r["audit_type"], r["object_name"]) for r in audited] == [("Operations", "Welcome")]


def test_the_api_repairs_for_operators_and_admins_only(harness: Harness, clock: Any) -> None:
    campaign_id = launched(harness, "Api")
    Worker(harness.runtime, worker_id=dead_worker_id())._claim(clock.now())
    operator, auditor = harness.api_token("operator"), harness.api_token("auditor", "read")
    with serving(create_app(harness.runtime)) as url:
        def post(token: str, body: dict[str, Any] | None) -> httpx.Response:
            return httpx.post(f"{url}/api/operations/repair", json=body, headers={"Authorization": f"Bearer {token}"})

        assert post(auditor, {"dry_run": True}).status_code == 403
        assert post(operator, {"campaign": "Nope"}).status_code == 404
        assert post(operator, {"dry_run": True, "limit": 3}).status_code == 422
        preview = post(operator, {"dry_run": True, "campaign": campaign_id[:8]}).json()
        assert [(f["kind"], f["runs"], f["fixed"]) for f in preview["findings"]] == [(LEASE, 1, 0)]
        assert repaired(harness) == []
        done = post(operator, None).json()
        assert done["dry_run"] is False and [f["fixed"] for f in done["findings"]] == [1]
    assert [r.user_name for r in harness.audit("Runs Repaired")] == ["operator-tester"]
    harness.run_to_idle()
    assert set(statuses(harness, campaign_id).values()) == {"waiting"}
    assert find_stuck(harness.runtime) == []
