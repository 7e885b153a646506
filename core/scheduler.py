"""The scheduler role: APScheduler 3 with its job store in the project database, one process per deployment.

It schedules what happens at a time — cycle launches, deadlines, audit dispatch, digests, retention — never one job
per target. Scheduled launches live in the launches table; jobs are kept in step with it (fixed ids, replace_existing),
so a restart keeps every schedule and a lost job is recreated by the next sync.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from . import jobs
from .db import reading
from .schema import launches

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)
JOBS = "campaignkit.core.jobs"
JOB_TABLE = "apscheduler_jobs"


class SharedJobStore(SQLAlchemyJobStore):
    """The project database's job store, tolerant of a second scheduler started by mistake.

    Both would run a one-off job and both remove it afterwards; the second removal finds nothing. APScheduler
    raises JobLookupError there, inside its scheduling thread, which then dies and leaves a process that schedules
    nothing. The job is gone, which is what was wanted, and the launch itself is guarded by its unique key.
    """

    def remove_job(self, job_id: str) -> None:
        try:
            super().remove_job(job_id)
        except JobLookupError:
            log.info("job %s was already removed by another scheduler", job_id)


class SchedulerService:
    def __init__(self, runtime: Runtime, *, job_table: str = JOB_TABLE) -> None:
        self.runtime = runtime
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SharedJobStore(engine=runtime.engine, tablename=job_table)},
            executors={"default": ThreadPoolExecutor(4)},
            # Late jobs always run; launch_cycle itself decides launched-or-missed by the grace period, with the
            # runtime's clock, so the decision is ours and testable.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    def start(self) -> None:
        jobs.bind(self)
        self.scheduler.start(paused=True)
        settings = self.runtime.settings.scheduler
        self._ensure("housekeeping:sync", "sync_launches", IntervalTrigger(seconds=settings.sync_seconds))
        self._ensure("housekeeping:audit-dispatch", "dispatch_audit",
                     IntervalTrigger(seconds=settings.audit_dispatch_seconds))
        self._ensure("housekeeping:digests", "send_digests", IntervalTrigger(seconds=settings.digest_seconds))
        self._ensure("housekeeping:retention", "prune", CronTrigger(hour=3, minute=17, timezone=UTC))
        self.sync()
        self.scheduler.resume()

    def shutdown(self, wait: bool = True) -> None:
        if self.scheduler.running:
            # APScheduler 3 checks for a pause before it takes the job-store lock but not for a stop after: a round
            # waiting on that lock during shutdown submits to a closed executor and logs a traceback. Pausing, then
            # letting any round in progress finish under the lock, leaves nothing to submit.
            self.scheduler.pause()
            with self.scheduler._jobstores_lock:
                pass
            self.scheduler.shutdown(wait=wait)
        jobs.bind(None)

    def sync(self) -> int:
        """Make sure every scheduled launch and every open cycle's deadline has its job; returns how many launches
        are scheduled. Cycles launched by another process (`campaignkit campaign launch`) get their deadline here."""
        with reading(self.runtime.engine) as conn:
            scheduled = conn.execute(select(launches.c.id, launches.c.cycle_at)
                                     .where(launches.c.status == "scheduled")).all()
            open_cycles = conn.execute(select(launches.c.id, launches.c.deadline_at)
                                       .where(launches.c.status == "launched", launches.c.deadline_at.is_not(None),
                                              launches.c.ended_at.is_(None))).all()
        wanted = {f"launch:{row.id}": ("launch_cycle", row.cycle_at, row.id) for row in scheduled}
        wanted |= {f"deadline:{row.id}": ("cycle_deadline", row.deadline_at, row.id) for row in open_cycles}
        for job in self.scheduler.get_jobs():
            if job.id.startswith(("launch:", "deadline:")) and job.id not in wanted:
                job.remove()  # cancelled, launched or ended elsewhere
        existing = {job.id for job in self.scheduler.get_jobs()}
        for job_id, (function, at, launch_id) in wanted.items():
            if job_id not in existing:
                self._ensure(job_id, function, DateTrigger(run_date=at), args=[launch_id])
        return len(scheduled)

    def add_deadline(self, launch_id: int, at: datetime) -> None:
        self._ensure(f"deadline:{launch_id}", "cycle_deadline", DateTrigger(run_date=at), args=[launch_id])

    def jobs(self) -> list[dict[str, Any]]:
        return [{"id": job.id, "next_run_time": job.next_run_time, "trigger": str(job.trigger)}
                for job in self.scheduler.get_jobs()]

    def _ensure(self, job_id: str, function: str, trigger: Any, args: list[Any] | None = None) -> None:
        self.scheduler.add_job(f"{JOBS}:{function}", trigger=trigger, id=job_id, args=args or [],
                               replace_existing=True, name=job_id)
