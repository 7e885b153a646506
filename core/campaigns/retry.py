"""Sending finished runs back to a node: a failed run to the node that failed, a failed revocation to its action.

Each goes back as a new visit of the node (so a new idempotency key: the side effect really runs again), is audited
as Operations / Force Workflow Status, and a campaign that had completed is in progress again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from ..audit import Actor, AuditSubType, AuditType, record
from ..db import writing
from ..db.schema import campaigns, runs
from ..engine.worker import entering
from .lifecycle import audit_object
from .service import Campaigns

if TYPE_CHECKING:
    from ..runtime import Runtime


def retry_failed_runs(runtime: Runtime, campaign_id: str, actor: Actor, *, node: str | None = None) -> int:
    """Every failed run of the campaign (only those that failed at ``node``, if given) back to the node where it
    failed, e.g. once the template or the configuration that failed it is fixed; returns how many."""
    query = select(runs.c.id, runs.c.context, runs.c.target_key, runs.c.current_node, runs.c.error).where(
        runs.c.campaign_id == campaign_id, runs.c.status == "failed")
    if node is not None:
        query = query.where(runs.c.current_node == node)
    return restart(runtime, campaign_id, actor, query, lambda run: str(run.current_node),
                   lambda run: f"retry of {run.target_key} (run {run.id}) from node {run.current_node!r}, "
                               f"which failed: {run.error}")


def restart(runtime: Runtime, campaign_id: str, actor: Actor, query: Any, node_of: Any, details: Any) -> int:
    """Send the runs ``query`` selects back to ``node_of(run)``, auditing each with ``details(run)``."""
    now = runtime.clock.now()
    definition, _, _ = Campaigns(runtime).definition(campaign_id)
    with writing(runtime.engine) as conn:
        chosen = conn.execute(query).all()
        for run in chosen:
            node = node_of(run)
            conn.execute(update(runs).where(runs.c.id == run.id).values(
                status="active", current_node=node, context=entering(dict(run.context), node), result=None,
                attempt=0, error=None, due_at=now, finished_at=None, updated_at=now,
                lease_token=runs.c.lease_token + 1))
            record(conn, actor=actor, audit_type=AuditType.OPERATIONS, sub_type=AuditSubType.FORCE_WORKFLOW_STATUS,
                   at=now, obj=audit_object(campaign_id, definition), code=restart, details=details(run))
        if chosen:
            _reopen(conn, campaign_id, now)
    return len(chosen)


def _reopen(conn: Connection, campaign_id: str, now: Any) -> None:
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.state == "completed")
                 .values(state="in_progress", finished_at=None, updated_at=now))
