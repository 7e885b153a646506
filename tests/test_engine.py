"""The engine: retries and backoff, failure edges, timeouts, plugin isolation, termination, versions, audiences."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from campaignkit.core import AudienceError, Channel, Delivery, Message, PermanentStepError, StepError, hookimpl
from campaignkit.core.db.schema import audit_history, launches, runs, step_records

FLOW = """
name: Engine
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: mail}
    - id: mail
      type: send_message
      config: {channel: flaky, subject: s, text: t, to: "{{ target.key }}@example.org"}
      retry: {max_attempts: 3, backoff_seconds: 60, backoff_factor: 2}
      timeout_seconds: 0.5
      %s
    - {id: done, type: left_campaign}
%s"""


class Flaky:
    """A channel that fails as each recipient's script says: 'temp', 'slow down', 'perm', 'crash', 'hang' or 'ok'."""

    __name__ = "flaky"

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = script
        self.calls: list[tuple[str, str]] = []
        self.finished: list[dict[str, Any]] = []
        plugin = self

        class FlakyChannel(Channel):
            name = "flaky"

            def send(self, message: Message) -> Delivery:
                key = message.to.split("@")[0]
                plugin.calls.append((key, message.idempotency_key))
                todo = plugin.script.get(key) or ["ok"]
                action = todo.pop(0) if len(todo) > 1 else todo[0]
                if action == "temp":
                    raise StepError("mailbox busy")
                if action == "slow down":
                    raise StepError("rate limited", retry_after=600)
                if action == "perm":
                    raise PermanentStepError("no such mailbox")
                if action == "crash":
                    raise ZeroDivisionError("plugin bug")
                if action == "hang":
                    time.sleep(1.5)
                return Delivery(message_id=key)

        self.channel = FlakyChannel

    @hookimpl
    def register_channels(self) -> list[type[Channel]]:
        return [self.channel]

    @hookimpl
    def on_run_finished(self, run: Any) -> None:
        self.finished.append(dict(run))
        raise RuntimeError("an observer that breaks must not break the engine")


def setup(make_runtime: Any, actor: Any, tmp_path: Any, script: dict[str, list[str]], failure_edge: bool = False,
          keys: str = "a\nb\nc\n") -> tuple[Any, Flaky, str]:
    from conftest import Harness

    plugin = Flaky(script)
    harness = Harness(make_runtime(extra_plugins=(plugin,)), actor, tmp_path)
    edges = "edges: {next: done, failure: bounce}" if failure_edge else "next: done"
    extra = "    - {id: bounce, type: left_campaign, config: {reason: bounced}}\n" if failure_edge else ""
    campaign_id = harness.create(FLOW % (edges, extra))
    harness.launch(campaign_id, harness.csv("key\n" + keys))
    return harness, plugin, campaign_id


def mail_step(harness: Any, run: Any) -> Any:
    return next(s for s in harness.steps(run.id) if s.node_id == "mail")


def test_temporary_failures_retry_with_exponential_backoff(make_runtime: Any, actor: Any, tmp_path: Any,
                                                           clock: Any) -> None:
    harness, plugin, campaign_id = setup(make_runtime, actor, tmp_path, {"a": ["temp", "temp", "ok"]})
    start = clock.now()
    harness.run_to_idle()
    a = harness.runs(campaign_id)[0]
    assert (a.status, a.attempt, a.due_at) == ("active", 1, start + timedelta(seconds=60))
    assert mail_step(harness, a).outcome == "retrying" and "mailbox busy" in mail_step(harness, a).detail["error"]
    clock.advance(60)
    harness.run_to_idle()
    a = harness.runs(campaign_id)[0]
    assert (a.attempt, a.due_at) == (2, start + timedelta(seconds=60 + 120))
    clock.advance(120)
    harness.run_to_idle()
    a = harness.runs(campaign_id)[0]
    assert a.status == "completed" and mail_step(harness, a).attempt == 3
    keys = [k for who, k in plugin.calls if who == "a"]
    assert len(keys) == 3 and len(set(keys)) == 1  # one idempotency key for every attempt


def test_a_retry_waits_at_least_as_long_as_the_plugin_was_asked_to(make_runtime: Any, actor: Any, tmp_path: Any,
                                                                     clock: Any) -> None:
    harness, plugin, campaign_id = setup(make_runtime, actor, tmp_path, {"a": ["slow down", "temp", "ok"]}, keys="a\n")
    start = clock.now()
    harness.run_to_idle()
    (a,) = harness.runs(campaign_id)
    assert (a.attempt, a.due_at) == (1, start + timedelta(seconds=600))  # not the node's 60 s backoff
    clock.advance(599)
    harness.run_to_idle()
    assert len(plugin.calls) == 1  # not before the server said
    clock.advance(1)
    harness.run_to_idle()
    (a,) = harness.runs(campaign_id)
    assert (a.attempt, a.due_at) == (2, clock.now() + timedelta(seconds=120))  # the node's backoff again


@pytest.mark.parametrize("failure_edge", [True, False])
def test_exhausted_retries_take_the_failure_edge_or_fail_the_run(make_runtime: Any, actor: Any, tmp_path: Any,
                                                                 clock: Any, failure_edge: bool) -> None:
    harness, _, campaign_id = setup(make_runtime, actor, tmp_path, {"a": ["temp"]}, failure_edge=failure_edge,
                                    keys="a\n")
    for _ in range(3):
        harness.run_to_idle()
        clock.advance(3600)
    (run,) = harness.runs(campaign_id)
    step = mail_step(harness, run)
    assert step.outcome == "failed" and step.attempt == 3
    if failure_edge:
        assert (run.status, run.current_node, step.edge) == ("completed", "bounce", "failure")
    else:
        assert run.status == "failed" and run.error == "mail: mailbox busy"


def test_permanent_failures_skip_retries(make_runtime: Any, actor: Any, tmp_path: Any) -> None:
    harness, plugin, campaign_id = setup(make_runtime, actor, tmp_path, {"a": ["perm"]}, failure_edge=True)
    harness.run_to_idle()
    a = harness.runs(campaign_id)[0]
    assert a.current_node == "bounce" and mail_step(harness, a).attempt == 1
    assert [who for who, _ in plugin.calls].count("a") == 1


def test_a_crashing_or_hanging_plugin_is_isolated(make_runtime: Any, actor: Any, tmp_path: Any) -> None:
    harness, plugin, campaign_id = setup(make_runtime, actor, tmp_path, {"a": ["crash"], "b": ["hang"]})
    stats = harness.run_to_idle()
    a, b, c = harness.runs(campaign_id)
    assert c.status == "completed"  # its neighbours' failures did not touch it
    assert "ZeroDivisionError: plugin bug" in mail_step(harness, a).detail["error"]
    assert a.status == "active" and a.attempt == 1  # a plugin's crash counts as a temporary failure
    assert mail_step(harness, b).detail["error"] == "timed out after 0.5s" and b.attempt == 1
    assert stats.finished == 1
    assert plugin.finished and plugin.finished[0]["status"] == "completed"  # the raising observer was called


def test_terminate_ends_unfinished_runs_and_drops_a_worker_s_late_results(make_runtime: Any, actor: Any,
                                                                          tmp_path: Any) -> None:
    harness, _, campaign_id = setup(make_runtime, actor, tmp_path, {"a": ["temp"]}, keys="a\nb\n")
    harness.run_to_idle()  # b completes; a waits for its retry
    claimed = harness.worker._claim(harness.runtime.clock.now() + timedelta(hours=1))
    assert [row.target_key for row in claimed] == ["a"]
    assert harness.campaigns.terminate(campaign_id, actor) == 1
    harness.worker._process(claimed)  # the worker still held run a: its results must not land
    a, b = harness.runs(campaign_id)
    assert (a.status, b.status) == ("terminated", "completed")
    assert harness.campaigns.get(campaign_id)["state"] == "terminated"
    with harness.runtime.engine.connect() as conn:
        details = conn.execute(select(audit_history.c.details).where(
            audit_history.c.audit_sub_type == "Workflow Termination Request")).scalar_one()
    assert details == "1 unfinished run(s) terminated"


def test_a_run_taken_over_during_a_batch_drops_only_its_own_results(make_runtime: Any, actor: Any, tmp_path: Any,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    harness, _, campaign_id = setup(make_runtime, actor, tmp_path, {}, keys="a\nb\n")
    claimed = harness.worker._claim(harness.runtime.clock.now())
    taken = next(row.id for row in claimed if row.target_key == "a")
    with harness.runtime.engine.begin() as conn:  # a's lease ran out and another worker claimed it meanwhile
        conn.execute(update(runs).where(runs.c.id == taken).values(lease_owner="other",
                                                                    lease_token=runs.c.lease_token + 1))
    harness.worker._process(claimed)
    a, b = harness.runs(campaign_id)
    assert (b.status, [s.node_id for s in harness.steps(b.id)]) == ("completed", ["start", "mail", "done"])
    assert (a.status, a.current_node, a.lease_owner, harness.steps(a.id)) == ("pending", None, "other", [])
    assert "1 run(s) changed hands or state during the batch" in caplog.text


def test_a_run_another_worker_holds_is_claimed_again_only_once_its_hold_ran_out(make_runtime: Any, actor: Any,
                                                                                  tmp_path: Any) -> None:
    from campaignkit.core.engine.worker import Worker
    harness, _, campaign_id = setup(make_runtime, actor, tmp_path, {}, keys="a\n")
    now = harness.runtime.clock.now()
    (held,) = harness.worker._claim(now)
    (run,) = harness.runs(campaign_id)
    assert run.due_at <= now and run.lease_until == now + timedelta(seconds=300)  # the claim keeps the due time
    other = Worker(harness.runtime, worker_id="other")
    assert other._claim(now + timedelta(seconds=299)) == []
    assert [row.id for row in other._claim(now + timedelta(seconds=301))] == [held.id]
    other.close()
    harness.worker._process([held])  # the first worker's results no longer land
    (run,) = harness.runs(campaign_id)
    assert (run.status, run.lease_owner, harness.steps(run.id)) == ("pending", "other", [])


def test_a_record_written_by_hand_for_a_visit_a_batch_takes_as_new_does_not_stall_the_run(
        make_runtime: Any, actor: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    harness, _, campaign_id = setup(make_runtime, actor, tmp_path, {}, keys="a\n")
    (a,) = harness.runs(campaign_id)
    with harness.runtime.engine.begin() as conn:  # the first visit of start, which the worker inserts as new
        conn.execute(insert(step_records).values(
            run_id=a.id, node_id="start", visit=1, step_type="entered_campaign", attempt=1, outcome="waiting",
            started_at=harness.runtime.clock.now(), idempotency_key=f"ck:{a.id}:start:1"))
    harness.run_to_idle()
    (a,) = harness.runs(campaign_id)
    assert a.status == "completed"
    assert [(s.node_id, s.outcome) for s in harness.steps(a.id)] == [("start", "ok"), ("mail", "ok"), ("done", "ok")]
    assert "the batch is written again as upserts" in caplog.text


def test_a_campaign_completes_when_its_last_run_finishes(make_runtime: Any, actor: Any, tmp_path: Any) -> None:
    harness, _, campaign_id = setup(make_runtime, actor, tmp_path, {})
    assert harness.campaigns.get(campaign_id)["state"] == "in_progress"
    harness.run_to_idle()
    assert harness.campaigns.get(campaign_id)["state"] == "completed"


def test_editing_a_campaign_with_runs_creates_a_version(harness: Any) -> None:
    flow = (
        "name: V\nversion: '1.0'\nworkflow:\n  nodes:\n    - {id: s, type: entered_campaign, next: w}\n"
        "    - {id: w, type: time_delay, config: {duration: %s}, next: e}\n    - {id: e, type: left_campaign}\n"
    )
    from campaignkit.core.definitions.loader import load_definition_text

    campaign_id = harness.create(flow % "P1D")
    assert harness.campaigns.update(campaign_id, load_definition_text(flow % "P2D", "v.yaml"), harness.actor) \
        == (1, 0)  # no runs yet: edited in place
    harness.launch(campaign_id, harness.csv("key\nx\n"))
    old_version = harness.runs(campaign_id)[0].version_id
    assert harness.campaigns.update(campaign_id, load_definition_text(flow % "P3D", "v.yaml"), harness.actor) \
        == (1, 1)
    # The launch keeps the version it was made with; a journey's run in progress moves onto the new one
    # (tests/test_live_edit.py has the rules).
    assert harness.runs(campaign_id)[0].version_id == harness.campaigns.get(campaign_id)["current_version_id"] \
        != old_version


def test_a_bad_audience_row_rejects_the_whole_launch(harness: Any) -> None:
    campaign_id = harness.create("name: A\nworkflow:\n  nodes:\n    - {id: s, type: entered_campaign, next: e}\n"
                                 "    - {id: e, type: left_campaign}\n")
    rows = "".join(f"u{i},u{i}@example.org\n" for i in range(5000))
    cases = {
        "key,email\n" + rows + "bad,row,extra\n": ":5002: expected 2 fields, found 3",
        "key,email\n" + rows + ",nobody@example.org\n": ":5002: empty 'key'",
        "id,email\nu1,x\n": ":1: no 'key' column",
    }
    for content, message in cases.items():
        with pytest.raises(AudienceError, match=message):
            harness.launch(campaign_id, harness.csv(content))
    path = harness.folder / "latin1.csv"
    path.write_bytes(b"key,name\nu1,Jos\xe9\n")
    with pytest.raises(AudienceError, match=r"latin1\.csv:2: not valid utf-8-sig text"):
        harness.launch(campaign_id, path)
    assert harness.runs(campaign_id) == []
    with harness.runtime.engine.connect() as conn:
        assert conn.execute(select(launches.c.id)).first() is None
    assert harness.campaigns.get(campaign_id)["state"] == "draft"


def test_duplicate_targets_merge_by_key(harness: Any) -> None:
    campaign_id = harness.create("name: D\nworkflow:\n  nodes:\n    - {id: s, type: entered_campaign, next: e}\n"
                                 "    - {id: e, type: left_campaign}\n")
    many = "".join(f"u{i},,x\n" for i in range(4500))  # spans more than one insert chunk
    count = harness.launch(campaign_id, harness.csv("key,email,plan\nu1,a@example.org,free\n" + many
                                                    + "u1,,pro\n"))
    assert count == 4500
    u1 = next(r for r in harness.runs(campaign_id) if r.target_key == "u1")
    assert u1.target == {"key": "u1", "email": "", "plan": "pro"}  # later rows win


def test_the_launch_progress_bar_knows_how_many_rows_a_csv_has(tmp_path: Path) -> None:
    from campaignkit.core.campaigns.launch import AudienceFile, estimated_rows

    with_newline, without = tmp_path / "a.csv", tmp_path / "b.csv"
    with_newline.write_text("key,email\n" + "".join(f"k{i},k{i}@example.org\n" for i in range(2500)))
    without.write_text("key,email\nk1,k1@example.org\nk2,k2@example.org")
    assert estimated_rows(AudienceFile("csv", with_newline)) == 2500
    assert estimated_rows(AudienceFile("csv", without)) == 2
    assert estimated_rows(AudienceFile("xlsx", with_newline)) is None  # not a format we can count
    assert estimated_rows(AudienceFile("csv", tmp_path / "missing.csv")) is None
    assert estimated_rows(None) is None
