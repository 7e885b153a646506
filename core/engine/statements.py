"""The worker's hot-path statements (claim, step-record upsert, first-attempt starts, run update): built once per
worker, so SQLAlchemy's compiled cache is hit on every batch."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..db.schema import runs, step_records, step_starts
from ..kinds import ENGINE_FACETS

FACETS = ENGINE_FACETS  # what steps may set, as far as the run's kind declares (CampaignKind.facets)
# What the engine keeps per run: the facets, and the assignment version it bumps whenever the assignee changes (a
# decision link is bound to it, so a link stops working once its item is handed to someone else).
RUN_FACETS = (*FACETS, "assignment")


class Statements:
    """The hot path's statements, built once so SQLAlchemy's compiled cache is hit every batch."""

    def __init__(self, postgres: bool) -> None:
        due = select(runs.c.id).where(runs.c.due_at <= bindparam("now")).order_by(runs.c.due_at).limit(
            bindparam("limit")
        )
        if postgres:
            due = due.with_for_update(skip_locked=True)
        self.claim = (
            update(runs)
            .where(runs.c.id.in_(due.scalar_subquery()))
            .values(due_at=bindparam("lease_until"), lease_owner=bindparam("owner"),
                    lease_token=runs.c.lease_token + 1)
            .returning(runs.c.id, runs.c.campaign_id, runs.c.launch_id, runs.c.version_id, runs.c.target_key,
                       runs.c.target, runs.c.status, runs.c.current_node, runs.c.context, runs.c.attempt,
                       runs.c.lease_token, *(runs.c[name] for name in RUN_FACETS))
        )
        insert = postgresql.insert if postgres else sqlite.insert
        # A new start, or the one recorded by an earlier attempt (updated to itself, so RETURNING gives it back):
        # one statement for the whole wave.
        start = insert(step_starts)
        self.record_start = start.on_conflict_do_update(
            index_elements=list(step_starts.primary_key.columns), set_={"started_at": step_starts.c.started_at},
        ).returning(step_starts.c.run_id, step_starts.c.node_id, step_starts.c.visit, step_starts.c.started_at)
        stmt = insert(step_records)
        self.upsert_step = stmt.on_conflict_do_update(
            index_elements=[step_records.c.run_id, step_records.c.node_id, step_records.c.visit],
            set_={
                "attempt": stmt.excluded.attempt,
                "finished_at": stmt.excluded.finished_at,
                "outcome": stmt.excluded.outcome,
                "edge": stmt.excluded.edge,
                "detail": stmt.excluded.detail,
            },
        )
        self.update_run = (
            update(runs)
            .where(and_(runs.c.id == bindparam("b_id")))
            .values(
                status=bindparam("b_status"),
                current_node=bindparam("b_node"),
                context=bindparam("b_context", type_=runs.c.context.type),
                due_at=bindparam("b_due", type_=runs.c.due_at.type),
                lease_owner=None,
                attempt=bindparam("b_attempt"),
                error=bindparam("b_error"),
                updated_at=bindparam("b_now", type_=runs.c.updated_at.type),
                finished_at=bindparam("b_finished", type_=runs.c.finished_at.type),
                **{name: bindparam(f"b_{name}", type_=runs.c[name].type) for name in RUN_FACETS},
            )
        )
