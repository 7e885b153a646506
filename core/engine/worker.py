"""The worker: claims due runs under a lease, advances each until it must wait or ends, and writes the
whole batch (step records, run updates, consumed events, audit) in one short transaction of Core statements.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, exists, select, update
from sqlalchemy.exc import IntegrityError

from ..audit import Actor, AuditObject, AuditSubType, AuditType, record
from ..db import is_postgres, writing
from ..db.schema import campaigns, events, launches, runs
from ..errors import StepError
from ..step import FAILURE, NEXT, RunEvent, StepContext, StepResult
from .compiled import CompiledNode, WorkflowCache
from .executor import Outcome, StepExecutor
from .report_tally import ReportTally, rewritten_visits
from .run_context import WAIT, RunState, idempotency_key
from .statements import RUN_FACETS, ClaimedRun, RecordStart, Statements, StepRecord

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 86_400


@dataclass
class BatchStats:
    claimed: int = 0
    steps: int = 0
    finished: int = 0


class _ChangedHands(Exception):
    """A run of the batch is no longer this worker's: write the batch again for the runs that still are."""


class Worker:
    """Any number of workers may run against one database; leases keep them from sharing a run."""

    def __init__(self, runtime: Runtime, *, worker_id: str | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.worker
        self.worker_id = worker_id or f"{runtime.instance_id}:{uuid.uuid4().hex[:8]}"
        self.workflows = WorkflowCache(runtime)
        self._deadlines: dict[int, datetime | None] = {}  # a cycle's deadline is fixed when it launches
        self.executor = StepExecutor(self.settings.threads)
        self._statements = Statements(runtime.engine.dialect)
        self._tally = ReportTally(is_postgres(runtime.engine))  # the reports' counts, the visits by node and edge

    # --- loop ---------------------------------------------------------------------------------------

    def run_once(self) -> BatchStats:
        """Claim one batch and process it; returns what was done (claimed == 0 means nothing was due)."""
        now = self.runtime.clock.now()
        rows = self._claim(now)
        if not rows:
            return BatchStats()
        return self._process(rows)

    def run_until_idle(self, max_batches: int | None = None) -> BatchStats:
        total = BatchStats()
        batches = 0
        while max_batches is None or batches < max_batches:
            stats = self.run_once()
            batches += 1
            if stats.claimed == 0:
                break
            total.claimed += stats.claimed
            total.steps += stats.steps
            total.finished += stats.finished
        return total

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                stats = self.run_once()
            except Exception:
                log.exception("worker batch failed; its runs will be reclaimed when the lease expires")
                stats = BatchStats()
            if stats.claimed == 0:
                stop.wait(self.settings.poll_seconds)

    def close(self) -> None:
        self.executor.shutdown()

    # --- claim --------------------------------------------------------------------------------------

    def _claim(self, now: datetime) -> list[ClaimedRun]:
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        with writing(self.runtime.engine) as conn:
            return self._statements.claimed(conn.execute(  # all(): one fetch from the driver, not one per row
                self._statements.claim,
                {"now": now, "lease_until": lease_until, "owner": self.worker_id, "limit": self.settings.batch_size},
            ).all())

    # --- advance ------------------------------------------------------------------------------------

    def _process(self, rows: list[ClaimedRun]) -> BatchStats:
        records: list[StepRecord] = []
        started: set[tuple[int, str, int]] = set()
        states = [self._state(row) for row in rows]
        self._attach_events([s for s, row in zip(states, rows, strict=True) if row.has_events])
        self._load_deadlines(states)
        live = [s for s in states if not s.finished and s.status != "waiting"]
        max_steps = self.settings.max_steps_per_claim
        while live:
            now = self.runtime.clock.now()
            nodes = [s.workflow.nodes[s.node_id] for s in live]
            jobs = [(node, self._context(s, node, now)) for s, node in zip(live, nodes, strict=True)]
            self._first_attempts(jobs, now, started)
            outcomes = self.executor.run(jobs)
            finished_at = self.runtime.clock.now()
            still_live = []
            for state, (node, ctx), outcome in zip(live, jobs, outcomes, strict=True):
                state.steps_taken += 1
                keep_going = self._apply(state, node, ctx, outcome, ctx.now, finished_at, records)
                if keep_going and state.steps_taken >= max_steps:
                    state.due_at = finished_at  # yield the claim; the run goes on in a later batch
                    keep_going = False
                if keep_going:
                    still_live.append(state)
            live = still_live
        finished, completed = self._write(states, records, started, self.runtime.clock.now(), rows)
        self._after_commit(finished, completed)
        return BatchStats(claimed=len(rows), steps=len(records), finished=len(finished))

    def _state(self, row: ClaimedRun) -> RunState:
        workflow = self.workflows.get(row.version_id)
        context = dict(row.context or {})
        state = RunState(
            id=row.id, campaign_id=row.campaign_id, lease_token=row.lease_token, launch_id=row.launch_id,
            workflow=workflow, target_key=row.target_key, target=row.target, context=context,
            node_id=row.current_node or workflow.start, attempt=row.attempt,
            facets=dict(zip(RUN_FACETS, row.facets, strict=True)), claimed_facets=row.facets,
        )
        if row.current_node is None:
            state.enter(workflow.start)
        # A waiting run is due again: its timeout passed or an event arrived.
        state.status = "active" if row.status == "pending" or row.status == "waiting" else row.status
        if state.node_id not in workflow.nodes:
            mapped = workflow.definition.workflow.node_mappings.get(state.node_id)
            if mapped in workflow.nodes:
                state.enter(mapped)  # as a live edit moves a run at a node its version removed
            else:
                # Only a hand-made change of the database puts a run there; it fails alone, not the batch it came in.
                state.status = "failed"
                state.error = (f"{state.node_id}: its version of the workflow has no such node "
                               "(see `campaignkit runs repair`)")
        return state

    def _attach_events(self, states: list[RunState]) -> None:
        by_id = {s.id: s for s in states}
        if not by_id:
            return
        with self.runtime.engine.connect() as conn:
            conn = conn.execution_options(campaignkit_readonly=True)
            rows = conn.execute(
                select(events.c.id, events.c.run_id, events.c.name, events.c.payload, events.c.created_at)
                .where(events.c.run_id.in_(list(by_id)), events.c.consumed_at.is_(None))
                .order_by(events.c.id)
            )
            for ev in rows:
                by_id[ev.run_id].events.append(RunEvent(ev.id, ev.name, ev.payload or {}, ev.created_at))

    def _first_attempts(self, jobs: list[tuple[CompiledNode, StepContext]], now: datetime,
                        started: set[tuple[int, str, int]]) -> None:
        """Side effects see the time of their visit's first attempt, recorded in the ledger before they run.

        Whatever a side effect sends is fixed at its first attempt: a message's date, a field update's time, any
        template using ``now``. Retries and redeliveries (a worker that died after sending, before writing its batch)
        read that time back, so they send the same bytes under the same idempotency key. One short transaction per
        wave that has side effects: record a start where none exists (step_starts), read every first attempt's time.
        ``started`` collects the visits, whose starts the batch write removes once they have an outcome.
        """
        chosen = [ctx for node, ctx in jobs if node.step.side_effect]
        if not chosen:
            return
        keys = [(ctx.run_id, ctx.node_id, ctx.visit) for ctx in chosen]
        with writing(self.runtime.engine) as conn:
            first = self._statements.record_starts(conn, keys, now)
        for ctx, key in zip(chosen, keys, strict=True):
            ctx.now = first.get(key, now)
        started.update(keys)

    def _load_deadlines(self, states: list[RunState]) -> None:
        unknown = {s.launch_id for s in states} - set(self._deadlines)
        if not unknown:
            return
        with self.runtime.engine.connect() as conn:
            conn = conn.execution_options(campaignkit_readonly=True)
            rows = conn.execute(select(launches.c.id, launches.c.deadline_at).where(launches.c.id.in_(unknown)))
            self._deadlines.update({row.id: row.deadline_at for row in rows})

    def _context(self, state: RunState, node: CompiledNode, now: datetime) -> StepContext:
        visit = state.visit
        # Positional, in StepContext's field order (run_id, campaign_id, target_key, target, context, node_id, visit,
        # attempt, now, config, idempotency_key, runtime, edges, wait, events, facets, deadline, kind_variables):
        # by keyword, matching the 18 names took 0.7 of the 1.6 µs this call cost at every step.
        return StepContext(
            state.id, state.campaign_id, state.target_key, state.target, state.context, node.id, visit,
            state.attempt + 1, now, node.config, idempotency_key(state.id, node.id, visit), self.runtime,
            node.edges, state.context.get(WAIT), state.events, state.facets, self._deadlines.get(state.launch_id),
            state.workflow.variables,
        )

    def _apply(
        self, state: RunState, node: CompiledNode, ctx: StepContext, outcome: Outcome,
        started: datetime, finished: datetime, records: list[StepRecord],
    ) -> bool:
        """Fold one step's outcome into the run; True when the run goes on to another node now."""
        # A node that waited started when it first began waiting, not when it was last resumed.
        wait = state.context.get(WAIT)
        since = wait.get("since") if wait else None
        base: RecordStart = (state.id, node.id, ctx.visit, node.type, ctx.attempt,
                             datetime.fromisoformat(since) if since else started, ctx.idempotency_key)
        if isinstance(outcome, Exception):
            return self._fail(state, node, outcome, base, finished, records)

        result: StepResult = outcome
        if result.context_updates:
            state.context.update(result.context_updates)
        if result.facets:
            unknown = set(result.facets) - set(state.workflow.kind.facets)
            if unknown:
                return self._fail(state, node, StepError(
                    f"run facets the {state.workflow.kind.name} kind does not keep: {', '.join(sorted(unknown))}",
                    temporary=False), base, finished, records)
            if "assignee" in result.facets and result.facets["assignee"] != state.facets.get("assignee"):
                state.facets["assignment"] = int(state.facets.get("assignment") or 0) + 1
            state.facets.update(result.facets)
        if result.consumed_events:
            state.consumed.extend(result.consumed_events)
            taken = set(result.consumed_events)
            state.events = [e for e in state.events if e.id not in taken]
        detail = dict(result.detail) if result.detail else None
        if result.waiting:
            state.context[WAIT] = {
                "since": since or started.isoformat(),
                "until": result.wait_until.isoformat() if result.wait_until else None,
                "events": list(result.wait_for),
            }
            records.append(StepRecord(*base, None, "waiting", None, detail))
            state.status = "waiting"
            state.due_at = result.wait_until
            return False

        target = node.edges.get(result.edge) if result.edge else None
        if result.edge is not None and target is None and result.edge != NEXT:
            return self._fail(state, node, StepError(f"no edge labelled {result.edge!r}", temporary=False),
                              base, finished, records)
        records.append(StepRecord(*base, finished, "ok", result.edge if target else None, detail))
        if target is None:
            state.status = "completed"
            state.context.pop(WAIT, None)
            return False
        state.enter(target)
        state.status = "active"
        return True

    def _fail(
        self, state: RunState, node: CompiledNode, exc: Exception, base: RecordStart,
        finished: datetime, records: list[StepRecord],
    ) -> bool:
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, StepError) else str(exc)
        # Plugins talk to the outside, where most failures pass; a step's own logic fails the same way twice.
        temporary = exc.temporary if isinstance(exc, StepError) else node.step.side_effect
        attempt = state.attempt + 1
        detail = {"error": message}
        if temporary and attempt < node.retry.max_attempts:
            delay = node.retry.delay(attempt)
            asked = exc.retry_after if isinstance(exc, StepError) else None
            if asked is not None and asked > delay.total_seconds():
                # Sooner would only be refused again; a server asking for more than a day is not taken at its word.
                delay = timedelta(seconds=min(asked, MAX_RETRY_AFTER_SECONDS))
            records.append(StepRecord(*base, finished, "retrying", None,
                                      {**detail, "retry_at": (finished + delay).isoformat()}))
            state.attempt = attempt
            state.status = "active"
            state.due_at = finished + delay
            return False
        failure_target = node.edges.get(FAILURE) if getattr(exc, "follows_failure_edge", True) else None
        records.append(StepRecord(*base, finished, "failed", FAILURE if failure_target else None, detail))
        if failure_target:
            state.enter(failure_target)
            state.status = "active"
            return True
        state.status = "failed"
        state.error = f"{node.id}: {message}"
        return False

    # --- write --------------------------------------------------------------------------------------

    def _write(
        self, states: list[RunState], records: list[StepRecord], started: set[tuple[int, str, int]],
        now: datetime, claimed: list[ClaimedRun],
    ) -> tuple[list[RunState], list[str]]:
        """Returns the runs that finished and the campaigns that completed with them.

        Almost always every run is still ours: the run updates, which match on the lease, say so by their count,
        and the batch is written in one go. Otherwise (a lease expired and another worker took the run, or a
        person terminated it) that transaction is rolled back and the batch is written for the runs still ours."""
        rewritten = rewritten_visits(claimed)
        try:
            return self._write_batch(states, records, started, now, claimed, rewritten)
        except IntegrityError as exc:
            # A record the batch took for its visit's first was there already, which only a hand-made change of
            # the database does: rather than fail the batch at every claim, upsert each record this once. (Any
            # other integrity error fails the second write too, and is raised from there.)
            log.warning("a step record of the batch was written before (%s); the batch is written again as upserts",
                        exc.orig)
            return self._write_batch(states, records, started, now, claimed, rewritten, upsert_all=True)

    def _write_batch(
        self, states: list[RunState], records: list[StepRecord], started: set[tuple[int, str, int]],
        now: datetime, claimed: list[ClaimedRun], rewritten: dict[int, tuple[str, Any]], upsert_all: bool = False,
    ) -> tuple[list[RunState], list[str]]:
        args = (states, records, started, now, claimed, rewritten, upsert_all)
        try:
            with writing(self.runtime.engine) as conn:
                return self._write_owned(conn, *args, None)
        except _ChangedHands:
            with writing(self.runtime.engine) as conn:
                owned = self._still_owned(conn, states)
                log.warning("%d run(s) changed hands or state during the batch; their results are dropped",
                            len(states) - len(owned))
                return self._write_owned(conn, *args, owned)

    def _write_owned(
        self, conn: Connection, states: list[RunState], records: list[StepRecord],
        started: set[tuple[int, str, int]], now: datetime, claimed: list[ClaimedRun],
        rewritten: dict[int, tuple[str, Any]], upsert_all: bool, owned: set[int] | None,
    ) -> tuple[list[RunState], list[str]]:
        """Write the batch for the runs ``owned`` (None: all of them, raising _ChangedHands if one is not)."""
        kept = states if owned is None else [s for s in states if s.id in owned]
        if self._update_runs(conn, kept, now) < len(kept) and owned is None:
            raise _ChangedHands
        kept_records = records if owned is None else [r for r in records if r.run_id in owned]
        if kept_records:
            first: list[StepRecord] = []  # each its visit's first record
            again: list[StepRecord] = []  # each rewriting its visit's record (it waited or retried)
            for r in kept_records:
                rewrite = upsert_all or rewritten.get(r.run_id) == (r.node_id, r.visit)
                (again if rewrite else first).append(r)
            self._statements.insert_step.execute(conn, first)
            self._statements.upsert_step.execute(conn, again)
            self._tally.write(conn, claimed, kept_records, rewritten)
        if started:
            # Each visit started has its record here (every step of a wave gets one): once that says the visit has
            # an outcome, not a retry, no later attempt needs its first time.
            retrying = {(r.run_id, r.node_id, r.visit) for r in kept_records if r.outcome == "retrying"}
            settled = [key for key in started if key not in retrying and (owned is None or key[0] in owned)]
            if settled:
                self._statements.delete_start.execute(conn, settled)
        consumed = [event_id for s in kept for event_id in s.consumed]
        if consumed:
            conn.execute(update(events).where(events.c.id.in_(consumed)).values(consumed_at=now))
        self._wake_waiting_with_new_events(conn, [s for s in kept if s.status == "waiting"], now)
        finished = [s for s in kept if s.finished]
        completed = self._complete_campaigns(conn, {s.campaign_id for s in finished}, now)
        return finished, completed

    def _still_owned(self, conn: Connection, states: list[RunState]) -> set[int]:
        tokens = {s.id: s.lease_token for s in states}
        query = select(runs.c.id, runs.c.lease_token).where(
            runs.c.id.in_(list(tokens)), runs.c.lease_owner == self.worker_id
        )
        if is_postgres(conn):
            query = query.with_for_update()
        return {row.id for row in conn.execute(query) if tokens[row.id] == row.lease_token}

    def _update_runs(self, conn: Connection, kept: list[RunState], now: datetime) -> int:
        """One statement per set of facets that changed (most batches: one, with none), each row matching only
        while the run's lease is still ours; returns how many runs were updated."""
        by_facets: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for s in kept:
            changed: tuple[str, ...] = ()
            if tuple(s.facets.values()) != s.claimed_facets:  # the facets as claimed (most steps change none)
                changed = tuple(name for name, was in zip(RUN_FACETS, s.claimed_facets, strict=True)
                                if s.facets.get(name) != was)
            due = None if s.finished else s.due_at if s.status == "waiting" else (s.due_at or now)
            row = (s.id, self.worker_id, s.lease_token, s.status, s.node_id, s.context, due, s.attempt, s.error, now,
                   now if s.finished else None)
            if changed:
                row += tuple(s.facets.get(name) for name in changed)
            by_facets.setdefault(changed, []).append(row)
        return sum(self._statements.update_run(changed).execute(conn, rows) for changed, rows in by_facets.items())

    def _wake_waiting_with_new_events(self, conn: Connection, waiting: list[RunState], now: datetime) -> None:
        """An event that arrived while we held the lease could not wake the run; wake it now. Only for the events
        the run waits for: any other stays unconsumed, and waking on it would claim the run again every batch."""
        by_names: dict[tuple[str, ...], list[int]] = {}
        for state in waiting:
            names = tuple(sorted(state.context.get(WAIT, {}).get("events") or ()))
            if names:
                by_names.setdefault(names, []).append(state.id)
        for names, run_ids in by_names.items():
            conn.execute(update(runs).where(
                runs.c.id.in_(run_ids),
                exists().where(events.c.run_id == runs.c.id, events.c.consumed_at.is_(None), events.c.name.in_(names)),
            ).values(due_at=now))

    def _complete_campaigns(self, conn: Connection, campaign_ids: Iterable[str], now: datetime) -> list[str]:
        """Campaigns whose last live run just finished: completed, or back to scheduled if a cycle is pending."""
        completed = []
        for campaign_id in campaign_ids:
            idle = conn.execute(self._statements.complete_campaign, {"campaign_id": campaign_id, "now": now}).first()
            if idle is None or idle.state != "completed":
                continue
            conn.execute(self._statements.campaign_finished, {"campaign_id": campaign_id, "now": now})
            record(conn, actor=Actor.system(self.worker_id), audit_type=AuditType.INTERACTION_EVENT,
                   sub_type=AuditSubType.WORKFLOW_COMPLETED, at=now,
                   obj=AuditObject(campaign_id, idle.name, idle.folder), code=self, details="every run finished")
            completed.append(campaign_id)
        return completed

    def _after_commit(self, finished: list[RunState], completed: list[str]) -> None:
        if finished and self.runtime.pm.hook.on_run_finished.get_hookimpls():
            for s in finished:
                self.runtime.notify("on_run_finished", run={
                    "id": s.id, "campaign_id": s.campaign_id, "target_key": s.target_key,
                    "status": s.status, "current_node": s.node_id, "error": s.error,
                })
        for campaign_id in completed:
            with self.runtime.engine.connect() as conn:
                row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).mappings().first()
            if row is not None:
                self.runtime.notify("on_campaign_finished", campaign=dict(row), state="completed")
