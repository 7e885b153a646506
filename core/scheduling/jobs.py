"""Scheduler jobs, referenced by text ("campaignkit.core.scheduling.jobs:NAME") so the job store holds no pickled code.

They run in the scheduler process, which binds its runtime and scheduler here before starting.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from ..audit import Actor
from ..audit.checkpoints import take_checkpoint
from ..audit.dispatch import AuditDispatcher
from ..campaigns import Campaigns
from ..campaigns.counts import fold
from ..campaigns.repair import repair
from ..engine import report_tally
from .housekeeping import prune_step_records
from .tasks import system_task

if TYPE_CHECKING:
    from .service import SchedulerService

log = logging.getLogger(__name__)
_service: SchedulerService | None = None


def bind(service: SchedulerService | None) -> None:
    global _service
    _service = service


def _bound() -> SchedulerService:
    if _service is None:
        raise RuntimeError("campaignkit jobs run only inside a started scheduler")
    return _service


def launch_cycle(launch_id: int) -> None:
    """Launch a scheduled cycle, or record it as missed when it is later than the grace period."""
    service = _bound()
    runtime = service.runtime
    with system_task(runtime, f"launch cycle {launch_id}", launch_cycle):
        grace = timedelta(seconds=runtime.settings.scheduler.misfire_grace_seconds)
        outcome = Campaigns(runtime).run_cycle(launch_id, Actor.system(runtime.instance_id), grace=grace)
        log.info("launch %s: %s", launch_id, outcome.status)
        if outcome.deadline is not None:
            service.add_deadline(launch_id, outcome.deadline)
        if outcome.next_launch_id is not None:
            service.sync()


def cycle_deadline(launch_id: int) -> None:
    """The cycle's end_after has passed: every unfinished run of it receives a ``deadline`` event."""
    runtime = _bound().runtime
    with system_task(runtime, f"deadline of launch {launch_id}", cycle_deadline):
        Campaigns(runtime).cycle_deadline(launch_id, Actor.system(runtime.instance_id))


def sync_launches() -> None:
    service = _bound()
    with system_task(service.runtime, "sync scheduled launches", sync_launches):
        service.sync()


def dispatch_audit() -> None:
    runtime = _bound().runtime
    with system_task(runtime, "audit sink dispatch", dispatch_audit):
        AuditDispatcher(runtime).dispatch()


def checkpoint_audit() -> None:
    """Sign the audit chain's head into the checkpoint file and the trail (so the audit sinks carry it away)."""
    runtime = _bound().runtime
    with system_task(runtime, "audit checkpoint", checkpoint_audit):
        checkpoint, path = take_checkpoint(runtime, Actor.system(runtime.instance_id), code=checkpoint_audit)
        log.info("audit checkpoint of record %s appended to %s", checkpoint.audit_id, path)


def kind_job(kind_name: str, job_id: str) -> None:
    """A campaign kind's periodic job (CampaignKind.jobs), looked up by name: the job store keeps no code."""
    runtime = _bound().runtime
    job = next((job for job in runtime.kind(kind_name).jobs() if job.id == job_id), None)
    if job is None:
        log.warning("campaign kind %r has no job %r any more; skipped", kind_name, job_id)
        return
    with system_task(runtime, job.description, job.run):
        job.run(runtime)


def fold_counts() -> None:
    """PostgreSQL: fold the run and path count deltas its triggers appended, so a page sums a few rows; and the
    report counts' deltas (core/engine/report_tally.py)."""
    runtime = _bound().runtime
    with system_task(runtime, "fold run counts", fold_counts):
        fold(runtime.engine)
        report_tally.fold(runtime.engine)


def repair_runs() -> None:
    """Do the safe part of `runs repair`: release runs held by gone workers, settle campaigns whose state crossed their
    runs', move runs by a node mapping. Audited (Runs Repaired) only where something was fixed."""
    runtime = _bound().runtime
    with system_task(runtime, "repair stuck runs", repair_runs):
        report = repair(runtime, Actor.system(runtime.instance_id), safe_only=True)
        fixed = [finding for finding in report.findings if finding.fixed]
        if fixed:
            log.info("repair: %s", "; ".join(f"{f.campaign}: {f.result}" for f in fixed))
        left = [finding for finding in report.findings if not finding.fixed]
        if left:  # what needs a person: `campaignkit runs repair --dry-run` says what and why
            log.warning("repair: %d finding(s) need a person: %s", len(left),
                        "; ".join(f"{f.campaign}: {f.kind} ({f.runs} run(s))" for f in left))


def prune() -> None:
    runtime = _bound().runtime
    days = runtime.settings.scheduler.retention_days
    # With retention off the job still ran, so it is audited like every other execution, saying it did nothing.
    name = "retention pruning" if days is not None else "retention pruning (retention off)"
    with system_task(runtime, name, prune):
        if days is not None:
            pruned = prune_step_records(runtime, older_than=timedelta(days=days))
            log.info("retention: %s step record(s) pruned", pruned)
