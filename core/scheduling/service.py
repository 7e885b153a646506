"""The scheduler role: APScheduler 3 with its job store in the project database, one process per deployment.

It schedules what happens at a time — cycle launches, deadlines, audit dispatch and checkpoints, the campaign kinds'
jobs (an access review's digests), retention — never one job per target. Scheduled launches live in the launches
table; jobs are kept in step with it (fixed ids, replace_existing), so a restart keeps every schedule and a lost job
is recreated by the next sync.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_SUBMITTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from ..db import reading
from ..db.schema import SCHEDULER_JOB_TABLE, launches
from . import jobs
from .upcoming import open_cycle

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)
JOBS = "campaignkit.core.scheduling.jobs"
RETIRED_JOBS = ("housekeeping:digests",)  # campaignkit 0.1's digest job, now the access_review kind's
FOLD_SECONDS = 60  # how often PostgreSQL's count deltas are folded (core/campaigns/counts.py)
REPAIR_SECONDS = 300  # how often the safe repairs run (core/campaigns/repair.py): a lease is 5 minutes by default
FORMER_JOBS = "campaignkit.core.jobs"  # where 0.1's job store found the job functions
JOB_TABLE = SCHEDULER_JOB_TABLE
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


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


class ClosingThreadPoolExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, quiet about a processing round that raced the shutdown.

    APScheduler 3 checks for a pause before it takes the job-store lock, not for a stop after: a round that was
    between the two when the scheduler stopped submits to the closed pool. Nothing should run then; that is not
    an error worth a traceback in the log.
    """

    _closed = False

    def shutdown(self, wait: bool = True) -> None:
        self._closed = True
        super().shutdown(wait)

    def _do_submit_job(self, job: Any, run_times: Any) -> None:
        try:
            super()._do_submit_job(job, run_times)
        except RuntimeError:
            if not self._closed:
                raise
            log.debug("job %s not started: the scheduler is shutting down", job.id)


class SchedulerService:
    def __init__(self, runtime: Runtime, *, job_table: str = JOB_TABLE) -> None:
        self.runtime = runtime
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SharedJobStore(engine=runtime.engine, tablename=job_table)},
            executors={"default": ClosingThreadPoolExecutor(4)},
            # Late jobs always run; launch_cycle itself decides launched-or-missed by the grace period, with the
            # runtime's clock, so the decision is ours and testable.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        # Jobs in flight, so that shutdown can wait for them without holding APScheduler's locks (see shutdown).
        self._stopping = threading.Event()
        self._running_jobs = 0
        self._jobs_changed = threading.Condition()
        self.scheduler.add_listener(self._count_jobs, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def start(self) -> None:
        jobs.bind(self)
        self.scheduler.start(paused=True)
        for job in self.scheduler.get_jobs():  # a cycle's launch or deadline stored by 0.1, under the old path
            if job.func_ref.startswith(FORMER_JOBS + ":"):
                self.scheduler.modify_job(job.id, func=JOBS + job.func_ref[len(FORMER_JOBS) :])
        settings = self.runtime.settings.scheduler
        self._ensure("housekeeping:sync", "sync_launches", IntervalTrigger(seconds=settings.sync_seconds))
        self._ensure("housekeeping:audit-dispatch", "dispatch_audit",
                     IntervalTrigger(seconds=settings.audit_dispatch_seconds))
        for kind in self.runtime.kinds.values():  # each kind's own periodic work (an access review's digests)
            for job in kind.jobs():
                self._ensure(f"{kind.name}:{job.id}", "kind_job", IntervalTrigger(seconds=job.seconds),
                             args=[kind.name, job.id])
        for retired in RETIRED_JOBS:  # left in the job store by an older release, whose function is gone
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(retired)
        self._ensure("housekeeping:retention", "prune", CronTrigger(hour=3, minute=17, timezone=UTC))
        self._ensure("housekeeping:repair", "repair_runs", IntervalTrigger(seconds=REPAIR_SECONDS))
        if self.runtime.engine.dialect.name == "postgresql":  # SQLite's triggers keep one count row per key already
            self._ensure("housekeeping:fold-counts", "fold_counts", IntervalTrigger(seconds=FOLD_SECONDS))
        # Anchored at a fixed instant, so that restarting the scheduler (which replaces the job) never puts it off.
        self._ensure("housekeeping:audit-checkpoint", "checkpoint_audit",
                     IntervalTrigger(seconds=self.runtime.settings.audit.checkpoint_seconds, start_date=EPOCH))
        self.sync()
        self.scheduler.resume()

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking jobs, let the running ones finish, then stop.

        APScheduler's own shutdown(wait=True) waits for running jobs while holding the job-store lock, which a job
        that syncs needs: a deadlock. So: pause (no new rounds), wait for the jobs in flight with no lock held (a
        job that syncs now finds `_stopping` set), and only then shut down, with nothing left to wait for.
        """
        self._stopping.set()
        if self.scheduler.running:
            self.scheduler.pause()
            if wait:
                limit = self.runtime.settings.worker.step_timeout_seconds + 60
                with self._jobs_changed:
                    if not self._jobs_changed.wait_for(lambda: self._running_jobs <= 0, timeout=limit):
                        log.warning("scheduler jobs still running after %ss; stopping anyway", limit)
            self.scheduler.shutdown(wait=False)
        jobs.bind(None)

    def _count_jobs(self, event: JobExecutionEvent) -> None:
        with self._jobs_changed:
            self._running_jobs += 1 if event.code == EVENT_JOB_SUBMITTED else -1
            self._jobs_changed.notify_all()

    def sync(self) -> int:
        """Make sure every scheduled launch and every open cycle's deadline has its job; returns how many launches
        are scheduled. Cycles launched by another process (`campaignkit campaign launch`) get their deadline here."""
        if self._stopping.is_set():
            return 0  # the next start syncs; touching the scheduler now would race its shutdown
        with reading(self.runtime.engine) as conn:
            scheduled = conn.execute(select(launches.c.id, launches.c.cycle_at)
                                     .where(launches.c.status == "scheduled")).all()
            open_cycles = conn.execute(select(launches.c.id, launches.c.deadline_at).where(open_cycle())).all()
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
        if self._stopping.is_set():
            return  # the next start's sync adds the deadline of every open cycle
        self._ensure(f"deadline:{launch_id}", "cycle_deadline", DateTrigger(run_date=at), args=[launch_id])

    def jobs(self) -> list[dict[str, Any]]:
        return [{"id": job.id, "next_run_time": job.next_run_time, "trigger": str(job.trigger)}
                for job in self.scheduler.get_jobs()]

    def _ensure(self, job_id: str, function: str, trigger: Any, args: list[Any] | None = None) -> None:
        try:
            self.scheduler.add_job(f"{JOBS}:{function}", trigger=trigger, id=job_id, args=args or [],
                                   replace_existing=True, name=job_id)
        except JobLookupError:
            # A second scheduler on this database added the job between our insert and our replace, and ran and
            # removed it before the replace: the launch is claimed (its unique key guards it) and the next sync
            # settles the job store. Raising here would only put a traceback in the log.
            log.info("job %s was added and removed by another scheduler meanwhile", job_id)
