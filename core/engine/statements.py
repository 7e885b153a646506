"""The worker's hot-path statements (claim, step-record upsert, first-attempt starts, run update, campaign
completion): built once per worker, so SQLAlchemy's compiled cache is hit on every batch, and the two that write a
row per step compiled once for the driver (core/db/bulk.py), so a batch hands it prepared tuples."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Dialect,
    Row,
    bindparam,
    case,
    column,
    delete,
    exists,
    literal_column,
    null,
    or_,
    select,
    update,
    values,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import BindParameter

from ..db.bulk import PreparedStatement
from ..db.schema import LIVE_STATUSES, campaigns, events, launches, runs, step_records, step_starts
from ..kinds import ENGINE_FACETS

FACETS = ENGINE_FACETS  # what steps may set, as far as the run's kind declares (CampaignKind.facets)
# What the engine keeps per run: the facets, and the assignment version it bumps whenever the assignee changes (a
# decision link is bound to it, so a link stops working once its item is handed to someone else).
RUN_FACETS = (*FACETS, "assignment")


class StepRecord(NamedTuple):
    """A step record as the worker builds it, its values in the order the prepared insert and upsert take them."""

    run_id: int
    node_id: str
    visit: int
    step_type: str
    attempt: int
    started_at: datetime
    idempotency_key: str
    finished_at: datetime | None
    outcome: str  # waiting, retrying, ok, failed
    edge: str | None
    detail: Mapping[str, Any] | None


STEP_RECORD = StepRecord._fields
RecordStart = tuple[int, str, int, str, int, datetime, str]  # a StepRecord's values up to its idempotency key
# What every run update sets, in the order the prepared update takes them after the run's id; then the facets that
# changed. A facet is only written when it changed: on SQLite an UPDATE maintains every index on a column it sets,
# changed or not, and most steps change no facet.
STEP_START = ("run_id", "node_id", "visit", "started_at")  # a visit's first attempt, as step_starts keeps it
RUN_UPDATE = ("status", "current_node", "context", "due_at", "attempt", "error", "updated_at", "finished_at")


class ClaimedRun(NamedTuple):
    """A run as the claim returns it. Plain attributes: the worker reads about twenty per run, and a driver row's
    cost 0.25 µs each (SQLAlchemy's Row looks its names up in Python): 5 µs a run in all."""

    id: int
    campaign_id: str
    launch_id: int
    version_id: int
    target_key: str
    target: dict[str, Any]
    status: str
    current_node: str | None
    context: dict[str, Any] | None
    attempt: int
    lease_token: int
    has_events: bool  # whether the run has unconsumed events: most have none, and need no query for them
    facets: tuple[Any, ...]  # in RUN_FACETS order


CLAIMED_COLUMNS = ClaimedRun._fields[:-2]  # the runs columns the claim returns, then has_events, then the facets


class Statements:
    """The hot path's statements, built once so SQLAlchemy's compiled cache is hit every batch."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        postgres = dialect.name == "postgresql"
        # Due, and held by no one (or by a worker whose hold ran out): the runs other workers hold are still due,
        # so the due-time index meets them first and skips them, a few batches' worth at most.
        due = select(runs.c.id).where(
            runs.c.due_at <= bindparam("now"),
            or_(runs.c.lease_owner.is_(None), runs.c.lease_until <= bindparam("now")),
        ).order_by(runs.c.due_at).limit(bindparam("limit"))
        if postgres:
            due = due.with_for_update(skip_locked=True)
        unread = events.alias("unread")
        self.claim = (
            update(runs)
            .where(runs.c.id.in_(due.scalar_subquery()))
            # Only unindexed columns: on PostgreSQL the new row version stays on its page with no index entries
            # (a HOT update; runs has room for it, migration 0014), a tenth of the cost of moving due_at.
            .values(lease_until=bindparam("lease_until"), lease_owner=bindparam("owner"),
                    lease_token=runs.c.lease_token + 1)
            .returning(*(runs.c[name] for name in CLAIMED_COLUMNS),
                       # (Named in full: RETURNING renders columns unqualified, and a bare "id" would be the event's.)
                       exists().where(unread.c.run_id == literal_column("runs.id"), unread.c.consumed_at.is_(None))
                       .label("has_events"),
                       *(runs.c[name] for name in RUN_FACETS))
        )
        insert = postgresql.insert if postgres else sqlite.insert
        # A new start, or the one recorded by an earlier attempt (updated to itself, so RETURNING gives it back):
        # one statement for the whole wave.
        start = insert(step_starts)
        record_start = start.on_conflict_do_update(
            index_elements=list(step_starts.primary_key.columns), set_={"started_at": step_starts.c.started_at},
        ).returning(step_starts.c.run_id, step_starts.c.node_id, step_starts.c.visit, step_starts.c.started_at)
        self._record_starts = PreparedStatement(dialect, record_start, STEP_START, rows_per_statement=1000)
        # the driver's time as the column's type hands it back (UTCDateTime: aware, in UTC)
        processor = step_starts.c.started_at.type.dialect_impl(dialect).result_processor(dialect, None)
        self._started_at: Callable[[Any], Any] = processor or (lambda value: value)
        stmt = insert(step_records)
        # A visit's first record is a plain INSERT: an upsert costs PostgreSQL a speculative insertion per row (a
        # look into the unique index first, a second WAL record after). Only a record rewriting its visit's earlier
        # one (the run waited or retried there) goes through the upsert.
        self.insert_step = PreparedStatement(dialect, stmt, STEP_RECORD, rows_per_statement=1000)
        self.upsert_step = PreparedStatement(dialect, stmt.on_conflict_do_update(
            index_elements=[step_records.c.run_id, step_records.c.node_id, step_records.c.visit],
            set_={
                "attempt": stmt.excluded.attempt,
                "finished_at": stmt.excluded.finished_at,
                "outcome": stmt.excluded.outcome,
                "edge": stmt.excluded.edge,
                "detail": stmt.excluded.detail,
            },
        ), STEP_RECORD, rows_per_statement=1000)  # a batch writes each visit once: its rows never conflict
        if postgres:  # DELETE ... USING (VALUES ...): one statement for the batch
            keys = values(*(column(name, step_starts.c[name].type) for name in STEP_START[:3]), name="v").data(
                [tuple(bindparam(f"d_{name}", type_=step_starts.c[name].type) for name in STEP_START[:3])])
            settled = delete(step_starts).where(*(step_starts.c[name] == keys.c[name] for name in STEP_START[:3]))
        else:
            settled = delete(step_starts).where(*(step_starts.c[name] == bindparam(f"d_{name}")
                                                  for name in STEP_START[:3]))
        self.delete_start = PreparedStatement(dialect, settled, tuple(f"d_{name}" for name in STEP_START[:3]),
                                              rows_per_statement=1000, planned_each_time=True)  # a queue
        self._run_updates: dict[tuple[str, ...], PreparedStatement] = {}
        # A campaign whose last live run just finished: completed, or back to scheduled if a cycle is pending.
        campaign_id: BindParameter[str] = bindparam("campaign_id")
        self.complete_campaign = (
            update(campaigns)
            .where(campaigns.c.id == campaign_id, campaigns.c.state == "in_progress",
                   ~exists().where(runs.c.campaign_id == campaign_id, runs.c.status.in_(LIVE_STATUSES)))
            .values(state=case((exists().where(launches.c.campaign_id == campaign_id, launches.c.status == "scheduled"),
                                "scheduled"), else_="completed"),
                    updated_at=bindparam("now", type_=campaigns.c.updated_at.type))
            .returning(campaigns.c.name, campaigns.c.folder, campaigns.c.state)
        )
        self.campaign_finished = update(campaigns).where(campaigns.c.id == campaign_id).values(
            finished_at=bindparam("now", type_=campaigns.c.finished_at.type))

    @staticmethod
    def claimed(rows: Iterable[Row[Any]]) -> list[ClaimedRun]:
        """The claim's rows as ClaimedRun: its columns and has_events, then the facets as one tuple."""
        facets_at = len(CLAIMED_COLUMNS) + 1
        return [ClaimedRun._make((*row[:facets_at], row[facets_at:])) for row in rows]

    def record_starts(self, conn: Connection, keys: list[tuple[int, str, int]], now: datetime
                      ) -> dict[tuple[int, str, int], datetime]:
        """Record ``now`` as the first attempt of each visit (run, node, visit) that has none; returns every
        visit's first attempt."""
        rows = self._record_starts.fetch(conn, [(*key, now) for key in keys])
        times = {at: self._started_at(at) for at in {row[3] for row in rows}}  # most are this wave's ``now``
        return {(run_id, node_id, visit): times[at] for run_id, node_id, visit, at in rows}

    def update_run(self, facets: tuple[str, ...]) -> PreparedStatement:
        """The run update that also writes ``facets`` (in RUN_FACETS order), for the runs whose lease the worker
        still holds; rows are (id, lease owner, lease token, *RUN_UPDATE, *facets)."""
        found = self._run_updates.get(facets)
        if found is None:
            columns = (*RUN_UPDATE, *facets)
            names = ("b_id", "b_owner", "b_token", *(f"b_{name}" for name in columns))
            if self.dialect.name == "postgresql":  # one statement for the batch: UPDATE ... FROM (VALUES ...)
                keyed = ("id", "lease_owner", "lease_token", *columns)
                rows = values(*(column(name, runs.c[name].type) for name in keyed), name="v").data(
                    [tuple(bindparam(name, type_=runs.c[column_name].type)
                           for name, column_name in zip(names, keyed, strict=True))])
                statement = update(runs).where(
                    runs.c.id == rows.c.id, runs.c.lease_owner == rows.c.lease_owner,
                    runs.c.lease_token == rows.c.lease_token,
                ).values(lease_owner=null(), lease_until=null(), **{name: rows.c[name] for name in columns})
                found = PreparedStatement(self.dialect, statement, names, rows_per_statement=1000)
            else:  # SQLite runs a prepared statement per row in C, as cheap as one statement
                statement = update(runs).where(
                    runs.c.id == bindparam("b_id"), runs.c.lease_owner == bindparam("b_owner"),
                    runs.c.lease_token == bindparam("b_token"),
                ).values(lease_owner=null(), lease_until=null(),
                         **{name: bindparam(f"b_{name}", type_=runs.c[name].type) for name in columns})
                found = PreparedStatement(self.dialect, statement, names)
            self._run_updates[facets] = found
        return found
