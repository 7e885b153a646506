"""Repair: fix what stuck.py finds, or say what would be done (a dry run).

Each kind of fix is one transaction, audited per campaign as Operations / Runs Repaired with what was done and to how
many runs. `campaignkit runs repair`, POST /api/operations/repair and the scheduler's repair job (the safe fixes only)
call ``repair``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, case, exists, func, select, tuple_, update

from ..audit import Actor, AuditSubType, AuditType, record
from ..db import reading, writing
from ..db.schema import LIVE_STATUSES, campaigns, launches, runs
from ..engine.run_context import entering
from .stuck import (
    BROKEN_VERSION,
    ENDED_CAMPAIGN,
    LEASE,
    MEANINGS,
    MISSING_NODE,
    OVERDUE,
    UNFINISHED_CAMPAIGN,
    CampaignInfo,
    Finding,
    NodeMappings,
    definition_node_mappings,
    find_stuck,
    held_runs,
    overdue_runs,
    scan,
    worker_gone,
)

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = [
    "BROKEN_VERSION", "ENDED_CAMPAIGN", "LEASE", "MEANINGS", "MISSING_NODE", "OVERDUE", "UNFINISHED_CAMPAIGN",
    "Finding", "Report", "definition_node_mappings", "find_stuck", "held_runs", "overdue_runs", "repair",
    "worker_gone",
]
CHUNK = 500  # run ids per statement


@dataclass
class Report:
    dry_run: bool
    safe_only: bool
    at: datetime
    findings: list[Finding]
    scan_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "safe_only": self.safe_only, "at": self.at,
                "scan_seconds": round(self.scan_seconds, 3), "findings": [f.as_dict() for f in self.findings]}


def repair(runtime: Runtime, actor: Actor, *, campaign_id: str | None = None, dry_run: bool = False,
           safe_only: bool = False, node_mappings: NodeMappings = definition_node_mappings) -> Report:
    """Find what is stuck and, unless ``dry_run``, fix it: every fix, or with ``safe_only`` (the scheduler's job)
    only those marked safe. Each kind of fix is one transaction, audited per campaign as ``actor``."""
    started = time.monotonic()
    found, known = scan(runtime, campaign_id, node_mappings)
    report = Report(dry_run, safe_only, runtime.clock.now(), found, time.monotonic() - started)
    if dry_run:
        return report
    chosen = [f for f in found if f.fixable and (f.safe or not safe_only)]
    notices = _Notices()
    for kind, fixer in ((LEASE, _release), (MISSING_NODE, _resolve_nodes), (ENDED_CAMPAIGN, _settle_ended),
                        (UNFINISHED_CAMPAIGN, _complete_idle)):
        batch = [f for f in chosen if f.kind == kind and f.campaign_id in known]
        if not batch:
            continue
        now = runtime.clock.now()
        with writing(runtime.engine) as conn:
            for finding in batch:
                finding.fixed, summary = fixer(conn, finding, known[finding.campaign_id], actor, now, notices)
                if finding.fixed:
                    finding.result = summary
                    record(conn, actor=actor, audit_type=AuditType.OPERATIONS, sub_type=AuditSubType.RUNS_REPAIRED,
                           at=now, obj=known[finding.campaign_id].audit_object(), code=repair, details=summary)
                else:
                    finding.result = "nothing to do any more: it changed meanwhile"
    notices.send(runtime)
    return report


class _Notices:
    """Plugins hear of runs and campaigns that repair ended, after the commit, as they do from the worker."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.campaigns: list[str] = []

    def send(self, runtime: Runtime) -> None:
        for run in self.runs:
            runtime.notify("on_run_finished", run=run)
        for campaign_id in self.campaigns:
            with reading(runtime.engine) as conn:
                row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).mappings().first()
            if row is not None:
                runtime.notify("on_campaign_finished", campaign=dict(row), state="completed")


def _release(conn: Connection, finding: Finding, campaign: CampaignInfo, actor: Actor, now: datetime,
             notices: _Notices) -> tuple[int, str]:
    """Clear a gone worker's hold: the token bump makes the worker drop its results if it was only slow."""
    fix = finding.fix
    # The campaign is picked here, not in SQL: the due-time index reads a worker's few runs, where a campaign's
    # index would read all its live runs.
    query = held_runs(fix["horizon"], owner=fix["owner"])
    if fix["expired_before"] is not None:
        query = query.where(runs.c.lease_until < fix["expired_before"])
    held = [(row.id, row.lease_token) for row in conn.execute(query) if row.campaign_id == campaign.id]
    released = 0
    for start in range(0, len(held), CHUNK):
        # Each run as it was read: one claimed again meanwhile has a new token, and keeps its new hold.
        released += len(conn.execute(update(runs).where(
            tuple_(runs.c.id, runs.c.lease_token).in_(held[start:start + CHUNK]),
        ).values(lease_owner=None, lease_token=runs.c.lease_token + 1, updated_at=now,
                 due_at=case((runs.c.due_at > now, now), else_=runs.c.due_at)).returning(runs.c.id)).all())
    return released, f"released {released} run(s) held by {finding.detail}"


def _resolve_nodes(conn: Connection, finding: Finding, campaign: CampaignInfo, actor: Actor, now: datetime,
                   notices: _Notices) -> tuple[int, str]:
    fix = finding.fix
    at_node = (runs.c.campaign_id == campaign.id, runs.c.status.in_(LIVE_STATUSES),
               runs.c.version_id == fix["version_id"], runs.c.current_node == fix["node"])
    if fix["to"] is not None:
        chosen = conn.execute(select(runs.c.id, runs.c.context).where(*at_node)).all()
        # A paused campaign's runs stay parked: due when it is resumed.
        due = {"due_at": None, "paused_due_at": now} if campaign.state == "paused" else {"due_at": now}
        for run in chosen:  # a new visit of the mapped node, as a retry sends a run to a node
            conn.execute(update(runs).where(runs.c.id == run.id).values(
                status="active", current_node=fix["to"], context=entering(dict(run.context), fix["to"]), attempt=0,
                error=None, lease_owner=None, lease_token=runs.c.lease_token + 1, updated_at=now, **due))
        return len(chosen), (f"moved {len(chosen)} run(s) from {finding.detail}, to node {fix['to']!r}, as the "
                             "version's node mapping says")
    error = f"{fix['node']}: not a node of this run's campaign version; ended by repair"
    ended = conn.execute(update(runs).where(*at_node).values(
        status="failed", error=error, due_at=None, paused_due_at=None, lease_owner=None,
        lease_token=runs.c.lease_token + 1, finished_at=now, updated_at=now,
    ).returning(runs.c.id, runs.c.target_key)).all()
    notices.runs += [{"id": r.id, "campaign_id": campaign.id, "target_key": r.target_key, "status": "failed",
                      "current_node": fix["node"], "error": error} for r in ended]
    if ended:
        _complete_if_idle(conn, campaign, actor, now, notices)
    return len(ended), f"ended {len(ended)} run(s) as failed at {finding.detail}, with no node mapping to move them by"


def _settle_ended(conn: Connection, finding: Finding, campaign: CampaignInfo, actor: Actor, now: datetime,
                  notices: _Notices) -> tuple[int, str]:
    live = exists().where(runs.c.campaign_id == campaign.id, runs.c.status.in_(LIVE_STATUSES))
    if finding.fix["state"] == "completed":
        reopened = conn.execute(update(campaigns).where(campaigns.c.id == campaign.id,
                                                        campaigns.c.state == "completed", live)
                                .values(state="in_progress", finished_at=None, updated_at=now)).rowcount
        return (finding.runs if reopened else 0,
                f"put the campaign back in progress: it was completed while {finding.runs} run(s) were unfinished")
    # As terminate ends them (lifecycle.py): the token bump makes a worker holding one drop its results.
    ended = conn.execute(update(runs).where(
        runs.c.campaign_id == campaign.id, runs.c.status.in_(LIVE_STATUSES),
        select(campaigns.c.state).where(campaigns.c.id == campaign.id).scalar_subquery() == "terminated",
    ).values(status="terminated", due_at=None, paused_due_at=None, lease_owner=None,
             lease_token=runs.c.lease_token + 1, response=func.coalesce(runs.c.response, "Terminated"),
             finished_at=now, updated_at=now).returning(runs.c.id, runs.c.target_key, runs.c.current_node)).all()
    notices.runs += [{"id": r.id, "campaign_id": campaign.id, "target_key": r.target_key, "status": "terminated",
                      "current_node": r.current_node, "error": None} for r in ended]
    return len(ended), f"ended {len(ended)} unfinished run(s) as terminated: the campaign was terminated"


def _complete_idle(conn: Connection, finding: Finding, campaign: CampaignInfo, actor: Actor, now: datetime,
                   notices: _Notices) -> tuple[int, str]:
    state = _complete_if_idle(conn, campaign, actor, now, notices)
    return (1 if state else 0), f"set the campaign {state}: it was in progress with no unfinished run"


def _complete_if_idle(conn: Connection, campaign: CampaignInfo, actor: Actor, now: datetime,
                      notices: _Notices) -> str | None:
    """As the worker's _complete_campaigns: an in-progress campaign with no live run is completed, or scheduled
    when a cycle is still to come. Returns the new state, or None when it was not idle."""
    idle = conn.execute(update(campaigns).where(
        campaigns.c.id == campaign.id, campaigns.c.state == "in_progress",
        ~exists().where(runs.c.campaign_id == campaign.id, runs.c.status.in_(LIVE_STATUSES)),
    ).values(state=case((exists().where(launches.c.campaign_id == campaign.id, launches.c.status == "scheduled"),
                         "scheduled"), else_="completed"), updated_at=now)
        .returning(campaigns.c.state)).scalar()
    if idle == "completed":
        conn.execute(update(campaigns).where(campaigns.c.id == campaign.id).values(finished_at=now))
        record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT, sub_type=AuditSubType.WORKFLOW_COMPLETED,
               at=now, obj=campaign.audit_object(), code=repair, details="every run finished (found by repair)")
        notices.campaigns.append(campaign.id)
    return idle
