"""The counts the database keeps for a campaign's pages (runs by cycle, status and node; visits by node and edge)
agree with counting the runs and the ledger, through every path that changes them: launch, the worker, events,
failures, retries, termination, retention, and PostgreSQL's folding of its delta rows."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from conftest import Harness
from sqlalchemy import func, select

from campaignkit.core import Channel, Delivery, Message, StepError, hookimpl
from campaignkit.core.campaigns import Campaigns
from campaignkit.core.campaigns.counts import by_cycle, by_node, by_status, fold, totals
from campaignkit.core.campaigns.queries import campaign_summary, list_campaigns
from campaignkit.core.db import reading
from campaignkit.core.db.schema import LIVE_STATUSES, run_counts, runs, step_records
from campaignkit.core.engine.events import send_event
from campaignkit.core.scheduling.housekeeping import prune_step_records

FLOW = """
name: Counted
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: plan}
    - {id: plan, type: branch, config: {condition: "target.plan == 'pro'"}, edges: {'true': wait, 'false': done}}
    - {id: wait, type: wait_for_event, config: {events: [clicked, ignored]}, edges: {clicked: done, ignored: out}}
    - {id: done, type: left_campaign}
    - {id: out, type: left_campaign}
"""


def counted_from_rows(harness: Any, campaign_id: str) -> tuple[dict[str, int], dict[tuple[str, str], int], Counter]:
    """The same counts, the slow way: from the runs and the ledger."""
    with reading(harness.runtime.engine) as conn:
        statuses = dict(conn.execute(select(runs.c.status, func.count()).where(runs.c.campaign_id == campaign_id)
                                     .group_by(runs.c.status)).all())
        paths = {(node, edge or ""): n for node, edge, n in conn.execute(
            select(step_records.c.node_id, step_records.c.edge, func.count())
            .join(runs, runs.c.id == step_records.c.run_id).where(runs.c.campaign_id == campaign_id)
            .group_by(step_records.c.node_id, step_records.c.edge))}
        at = Counter({(node, status): n for node, status, n in conn.execute(
            select(runs.c.current_node, runs.c.status, func.count())
            .where(runs.c.campaign_id == campaign_id, runs.c.status.in_((*LIVE_STATUSES, "failed")),
                   runs.c.current_node.is_not(None))
            .group_by(runs.c.current_node, runs.c.status))})
    return statuses, paths, at


def assert_kept_counts_match(harness: Any, campaign_id: str) -> None:
    statuses, paths, at = counted_from_rows(harness, campaign_id)
    with reading(harness.runtime.engine) as conn:
        assert by_status(conn, campaign_id) == statuses
        nodes = by_node(conn, campaign_id)
        assert {(node, edge): n for node, c in nodes.items() for edge, n in c.left.items()} == {
            key: n for key, n in paths.items() if key[1]}
        entered: dict[str, int] = defaultdict(int)
        for (node, _), n in paths.items():
            entered[node] += n
        assert {node: c.entered for node, c in nodes.items() if c.entered} == entered
        assert Counter({(node, s): n for node, c in nodes.items() for s, n in c.at.items()}) == at
        assert totals(conn)[campaign_id] == (sum(statuses.values()),
                                            sum(n for s, n in statuses.items() if s in LIVE_STATUSES))


def test_counts_follow_launch_worker_events_and_termination(harness: Any) -> None:
    campaign_id = harness.create(FLOW)
    audience = "\n".join(f"t{i},{'pro' if i % 3 else 'free'}" for i in range(60))
    harness.launch(campaign_id, harness.csv(f"key,plan\n{audience}\n"))
    assert_kept_counts_match(harness, campaign_id)  # 60 pending runs at no node yet
    with reading(harness.runtime.engine) as conn:
        assert by_status(conn, campaign_id) == {"pending": 60}

    harness.run_to_idle()
    assert_kept_counts_match(harness, campaign_id)
    with reading(harness.runtime.engine) as conn:
        nodes = by_node(conn, campaign_id)
    assert nodes["plan"].left == {"true": 40, "false": 20} and nodes["wait"].at == {"waiting": 40}
    assert nodes["wait"].waiting == 40 and nodes["done"].entered == 20

    waiting = [run for run in harness.runs(campaign_id) if run.status == "waiting"]
    for i, run in enumerate(waiting[:30]):
        send_event(harness.runtime, run.id, "clicked" if i % 2 else "ignored", {})
    harness.run_to_idle()
    assert_kept_counts_match(harness, campaign_id)
    with reading(harness.runtime.engine) as conn:
        nodes = by_node(conn, campaign_id)
    assert nodes["wait"].left == {"clicked": 15, "ignored": 15} and nodes["wait"].waiting == 10

    Campaigns(harness.runtime).terminate(campaign_id, harness.actor)
    assert_kept_counts_match(harness, campaign_id)
    summary = campaign_summary(harness.runtime, campaign_id)
    assert summary["runs_by_status"] == {"completed": 50, "terminated": 10}
    assert summary["cycles"][0]["runs_by_status"] == {"completed": 50, "terminated": 10}
    (listed,) = [c for c in list_campaigns(harness.runtime) if c["id"] == campaign_id]
    assert (listed["runs"], listed["live_runs"]) == (60, 0)

    fold(harness.runtime.engine)  # PostgreSQL: one row per key afterwards, the same sums
    assert_kept_counts_match(harness, campaign_id)
    with reading(harness.runtime.engine) as conn:
        keys = conn.execute(select(run_counts.c.launch_id, run_counts.c.status, run_counts.c.node)
                            .where(run_counts.c.campaign_id == campaign_id)).all()
    assert len(keys) == len(set(keys))


def test_each_cycle_is_counted_apart(harness: Any, clock: Any) -> None:
    campaign_id = harness.create(FLOW)
    harness.launch(campaign_id, harness.csv("key,plan\na,free\nb,free\n"))
    harness.run_to_idle()  # both leave: the campaign completes and may be launched again
    clock.advance(timedelta(days=1))
    harness.launch(campaign_id, harness.csv("key,plan\nc,free\n"))
    first, second = campaign_summary(harness.runtime, campaign_id)["cycles"]
    assert (first["runs_by_status"], second["runs_by_status"]) == ({"completed": 2}, {"pending": 1})
    with reading(harness.runtime.engine) as conn:
        assert by_cycle(conn, campaign_id) == {first["id"]: {"completed": 2}, second["id"]: {"pending": 1}}


class Refusing:
    """A channel whose relay is always busy: every send is a temporary failure, so it is retried, then fails."""

    __name__ = "refusing"

    @hookimpl
    def register_channels(self) -> list[type[Channel]]:
        class Busy(Channel):
            name = "busy"

            def send(self, message: Message) -> Delivery:
                raise StepError("mailbox busy")

        return [Busy]


def test_failures_and_retries_move_the_counts(make_runtime: Any, actor: Any, tmp_path: Path, clock: Any) -> None:
    harness = Harness(make_runtime(extra_plugins=(Refusing(),)), actor, tmp_path)
    campaign_id = harness.create("""
name: Failing
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: mail}
    - id: mail
      type: send_message
      config: {channel: busy, subject: s, text: t, to: "{{ target.key }}@example.org"}
      retry: {max_attempts: 2, backoff_seconds: 60}
      next: end
    - {id: end, type: left_campaign}
""")
    harness.launch(campaign_id, harness.csv("key\na\nb\n"))
    harness.run_to_idle()
    assert_kept_counts_match(harness, campaign_id)  # retrying: the visit is at the node, with no edge yet
    with reading(harness.runtime.engine) as conn:
        assert by_node(conn, campaign_id)["mail"].entered == 2
    clock.advance(timedelta(minutes=5))
    harness.run_to_idle()
    assert_kept_counts_match(harness, campaign_id)
    with reading(harness.runtime.engine) as conn:
        assert by_node(conn, campaign_id)["mail"].at == {"failed": 2}


def test_retention_keeps_what_the_map_counted(harness: Any, clock: Any) -> None:
    campaign_id = harness.create(FLOW)
    harness.launch(campaign_id, harness.csv("key,plan\na,free\nb,free\n"))
    harness.run_to_idle()
    with reading(harness.runtime.engine) as conn:
        before = by_node(conn, campaign_id)
    clock.advance(timedelta(days=40))
    assert prune_step_records(harness.runtime, older_than=timedelta(days=30)) == 6
    with reading(harness.runtime.engine) as conn:
        assert by_node(conn, campaign_id) == before
