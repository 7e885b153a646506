"""Sending finished runs back to a node: a failed run to the node that failed, or a run a kind counts as failed (an
access review's failed revocation) to the node its retry point names.

Each goes back as a new visit of the node (so a new idempotency key: the side effect really runs again), is audited
as Operations / Force Workflow Status, and a campaign that had completed is in progress again. The CLI (`campaign
retry`), the API (`POST /api/campaigns/{id}/retry`) and the console's Retry page all call retry_runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select, update

from ..audit import Actor, AuditSubType, AuditType, record
from ..db import reading, writing
from ..db.schema import campaigns, runs
from ..engine.run_context import entering
from ..errors import CampaignkitError, InvalidState
from .lifecycle import audit_object
from .service import Campaigns
from .views import find_campaign

if TYPE_CHECKING:
    from ..kinds import RetryPoint
    from ..runtime import Runtime

FAILED = "failed"  # the runs whose step failed: back to that step
SAMPLE = 20  # runs a dry run lists
MAX_ERROR_TEXT = 200


@dataclass(frozen=True)
class RetrySelection:
    """Which finished runs go back. ``status``: ``failed`` (to the node that failed) or one of the campaign kind's
    retry points (``enforcement-failed``: to its node); the rest narrow it down and are all optional."""

    status: str = FAILED
    node: str | None = None  # only runs that stopped at this node
    error: str | None = None  # only runs whose error contains this text (any case)
    run_ids: tuple[int, ...] = ()  # only these runs
    cycle: int | None = None  # only runs of this launch

    def describe(self) -> str:
        parts = [self.status]
        if self.node:
            parts.append(f"at node {self.node!r}")
        if self.error:
            parts.append(f"with an error containing {self.error!r}")
        if self.run_ids:
            parts.append(f"runs {', '.join(map(str, self.run_ids[:10]))}" + (", ..." if len(self.run_ids) > 10 else ""))
        if self.cycle is not None:
            parts.append(f"cycle {self.cycle}")
        return " ".join(parts)


@dataclass(frozen=True)
class RetryOutcome:
    """How many runs went back (or would, on a dry run), and the first of them: id, target, node, error."""

    runs: int
    sample: list[dict[str, Any]]
    dry_run: bool = False


def retry_preview(runtime: Runtime, reference: str, selection: RetrySelection = RetrySelection(), *,
                  kind: str | None = None) -> RetryOutcome:
    """Which finished runs ``selection`` picks, without changing anything: how many and the first of them."""
    campaign = find_campaign(runtime, reference, kind=kind)
    point = _retry_point(runtime, campaign.kind, selection.status)
    query = _selected(campaign.id, selection, point)
    with reading(runtime.engine) as conn:
        count = int(conn.execute(select(func.count()).select_from(query.subquery())).scalar_one())
        sample = [_shown(run, point) for run in conn.execute(query.order_by(runs.c.id).limit(SAMPLE))]
    return RetryOutcome(count, sample, dry_run=True)


def retry_runs(runtime: Runtime, reference: str, actor: Actor, selection: RetrySelection = RetrySelection(), *,
               kind: str | None = None) -> RetryOutcome:
    """Send the finished runs ``selection`` picks back to their node, each audited as ``actor``. A paused or
    terminated campaign is InvalidState: a retried run is due at once, and workers would act while the campaign is
    meant to stand still."""
    campaign = find_campaign(runtime, reference, kind=kind)
    point = _retry_point(runtime, campaign.kind, selection.status)
    if campaign.state in ("paused", "terminated"):
        hint = "resume it first" if campaign.state == "paused" else "its runs have ended"
        raise InvalidState(f"campaign {campaign.name!r} is {campaign.state}: {hint}")
    chosen = restart(runtime, campaign.id, actor, _selected(campaign.id, selection, point),
                     lambda run: point.node if point is not None else str(run.current_node),
                     lambda run: _details(run, selection, point))
    return RetryOutcome(len(chosen), [_shown(run, point) for run in chosen[:SAMPLE]])


def retry_failed_runs(runtime: Runtime, campaign_id: str, actor: Actor, *, node: str | None = None) -> int:
    """Every failed run of the campaign (only those that failed at ``node``, if given) back to the node where it
    failed, e.g. once the template or the configuration that failed it is fixed; returns how many."""
    return retry_runs(runtime, campaign_id, actor, RetrySelection(node=node)).runs


def restart(runtime: Runtime, campaign_id: str, actor: Actor, query: Any, node_of: Any, details: Any) -> list[Any]:
    """Send the runs ``query`` selects back to ``node_of(run)``, auditing each with ``details(run)``; returns them."""
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
    return list(chosen)


def _retry_point(runtime: Runtime, kind_name: str, status: str) -> RetryPoint | None:
    if status == FAILED:
        return None
    kind = runtime.kinds.get(kind_name)
    points = kind.retry_points if kind is not None else {}
    if status not in points:
        known = ", ".join([FAILED, *points])
        raise CampaignkitError(f"status: {status!r} is not something a {kind_name} campaign retries; one of {known}")
    return points[status]


def _selected(campaign_id: str, selection: RetrySelection, point: RetryPoint | None) -> Any:
    query = select(runs.c.id, runs.c.context, runs.c.target_key, runs.c.current_node, runs.c.error).where(
        runs.c.campaign_id == campaign_id)
    if point is None:
        query = query.where(runs.c.status == FAILED)
    else:
        query = query.where(runs.c.status == point.status, *(runs.c[facet] == value
                                                              for facet, value in point.facets.items()))
    if selection.node is not None:
        query = query.where(runs.c.current_node == selection.node)
    if selection.error:
        # Any case, and the text taken literally: % and _ in an error message are not wildcards here.
        query = query.where(func.lower(runs.c.error).contains(selection.error.lower(), autoescape=True))
    if selection.run_ids:
        query = query.where(runs.c.id.in_(selection.run_ids))
    if selection.cycle is not None:
        query = query.where(runs.c.launch_id == selection.cycle)
    return query.order_by(runs.c.id)  # audited, and their rows locked, in one stable order


def _shown(run: Any, point: RetryPoint | None) -> dict[str, Any]:
    error = run.error if run.error is None or len(run.error) <= MAX_ERROR_TEXT else run.error[:MAX_ERROR_TEXT] + "…"
    return {"run_id": run.id, "target_key": run.target_key, "node": run.current_node,
            "to_node": point.node if point is not None else run.current_node, "error": error}


def _details(run: Any, selection: RetrySelection, point: RetryPoint | None) -> str:
    if point is not None:
        return f"{point.audit} for {run.target_key} (run {run.id})"
    return (f"retry of {run.target_key} (run {run.id}) from node {run.current_node!r}, which failed: {run.error}; "
            f"selected as {selection.describe()}")


def _reopen(conn: Connection, campaign_id: str, now: Any) -> None:
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.state == "completed")
                 .values(state="in_progress", finished_at=None, updated_at=now))
