"""What will happen and when: scheduled cycles (the next cycle of a recurring campaign among them), the deadlines of
open cycles, and the jobs the scheduler holds in its job store. Read by `campaignkit schedule list`, the console's
Schedule page and GET /api/schedule; nothing here changes anything or needs a running scheduler."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Connection, column, inspect, select, table

from ..db import reading
from ..db.schema import SCHEDULER_JOB_TABLE, campaign_versions, campaigns, launches
from ..definitions.schedule import next_cycle
from ..definitions.workflow import Schedule
from ..errors import DefinitionError

if TYPE_CHECKING:
    from ..runtime import Runtime

# A paused campaign's cycle keeps its row, as paused, and launches once the campaign is resumed.
PENDING_STATUSES = ("scheduled", "paused")
# APScheduler's own table, read as plain columns: the pickled job state is the scheduler's business.
JOB_STORE = table(SCHEDULER_JOB_TABLE, column("id"), column("next_run_time"))
# The scheduler's fixed job ids (service.py), for people; a kind's jobs are named by the kind (KindJob.description).
HOUSEKEEPING = {
    "housekeeping:sync": "sync scheduled launches and deadlines into jobs",
    "housekeeping:audit-dispatch": "deliver new audit records to the audit sinks",
    "housekeeping:audit-checkpoint": "sign a checkpoint of the audit chain's head",
    "housekeeping:retention": "prune the step records of long-finished runs",
    "housekeeping:repair": "repair stuck runs: the safe fixes of `runs repair`",
    "housekeeping:fold-counts": "fold the run and report counts' deltas into their totals (PostgreSQL)",
}


def open_cycle() -> ColumnElement[bool]:
    """A launched cycle whose deadline has not been applied yet (the scheduler keeps a ``deadline:`` job for it)."""
    return (launches.c.status == "launched") & launches.c.deadline_at.is_not(None) & launches.c.ended_at.is_(None)


def scheduled_launches(runtime: Runtime) -> list[dict[str, Any]]:
    """Every scheduled or paused cycle, soonest first: launch_id, campaign_id, name, next_fire_time, status."""
    query = (select(launches.c.id.label("launch_id"), campaigns.c.id.label("campaign_id"), campaigns.c.name,
                    launches.c.cycle_at.label("next_fire_time"), launches.c.status)
             .join(campaigns, campaigns.c.id == launches.c.campaign_id)
             .where(launches.c.status.in_(PENDING_STATUSES)).order_by(launches.c.cycle_at, launches.c.id))
    with reading(runtime.engine) as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def open_deadlines(runtime: Runtime) -> list[dict[str, Any]]:
    """Every launched cycle with a deadline still to apply, soonest first: launch_id, campaign_id, name, cycle_at,
    deadline_at."""
    query = (select(launches.c.id.label("launch_id"), campaigns.c.id.label("campaign_id"), campaigns.c.name,
                    launches.c.cycle_at, launches.c.deadline_at)
             .join(campaigns, campaigns.c.id == launches.c.campaign_id)
             .where(open_cycle()).order_by(launches.c.deadline_at, launches.c.id))
    with reading(runtime.engine) as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


@dataclass(frozen=True)
class Job:
    """One job in the scheduler's job store. ``next_run_at`` None: the job is paused."""

    id: str
    next_run_at: datetime | None
    description: str
    launch_id: int | None = None


def registered_jobs(runtime: Runtime) -> list[Job]:
    """The jobs a scheduler registered in this database, soonest first (none before a scheduler first started)."""
    with reading(runtime.engine) as conn:
        if not _has_job_store(conn):
            return []
        rows = conn.execute(select(JOB_STORE.c.id, JOB_STORE.c.next_run_time)).all()
    found = [Job(row.id, _from_timestamp(row.next_run_time), *_describe(runtime, row.id)) for row in rows]
    return sorted(found, key=lambda job: (job.next_run_at is None, job.next_run_at or datetime.max.replace(tzinfo=UTC),
                                          job.id))


@dataclass(frozen=True)
class Upcoming:
    """One thing that will happen at ``at``: a cycle's launch, or a cycle's deadline."""

    at: datetime
    event: str  # "launch" (a one-off cycle), "next cycle" (of a recurring campaign), "deadline"
    status: str  # scheduled, paused (a launch), open (a cycle waiting for its deadline)
    campaign_id: str
    campaign_name: str
    launch_id: int
    cycle_at: datetime
    recurrence: str | None = None  # "0 9 * * mon (Europe/Paris)" for a recurring campaign
    following_at: datetime | None = None  # the cycle after this one, for a recurring campaign
    job_id: str | None = None  # the scheduler's job for it, when the job store holds one

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def upcoming(runtime: Runtime, jobs: list[Job] | None = None) -> list[Upcoming]:
    """Scheduled and paused launches and open cycles' deadlines, by time, each with the scheduler's job if it has one
    (a scheduler adds a missing one within ``scheduler.sync_seconds``; a paused cycle has none)."""
    job_ids = {job.id for job in (registered_jobs(runtime) if jobs is None else jobs)}
    launch_rows = scheduled_launches(runtime)
    schedules = _current_schedules(runtime, {row["campaign_id"] for row in launch_rows})
    default_zone = runtime.settings.timezone
    found: list[Upcoming] = []
    for row in launch_rows:
        schedule = schedules.get(row["campaign_id"])
        recurring = schedule is not None and bool(schedule.cron)
        following = None
        if recurring:
            try:
                following = next_cycle(schedule, row["next_fire_time"], default_zone)
            except DefinitionError:
                following = None  # a time zone this host no longer knows: the scheduler says so when it launches
        job_id = f"launch:{row['launch_id']}"
        found.append(Upcoming(
            at=row["next_fire_time"], event="next cycle" if recurring else "launch", status=row["status"],
            campaign_id=row["campaign_id"], campaign_name=row["name"], launch_id=row["launch_id"],
            cycle_at=row["next_fire_time"],
            recurrence=f"{schedule.cron} ({schedule.timezone or default_zone})" if recurring and schedule else None,
            following_at=following, job_id=job_id if job_id in job_ids else None))
    for row in open_deadlines(runtime):
        job_id = f"deadline:{row['launch_id']}"
        found.append(Upcoming(
            at=row["deadline_at"], event="deadline", status="open", campaign_id=row["campaign_id"],
            campaign_name=row["name"], launch_id=row["launch_id"], cycle_at=row["cycle_at"],
            job_id=job_id if job_id in job_ids else None))
    return sorted(found, key=lambda item: (item.at, item.launch_id, item.event))


def schedule_overview(runtime: Runtime) -> dict[str, Any]:
    """The Schedule page and GET /api/schedule: what will happen, by time, and the scheduler's jobs."""
    jobs = registered_jobs(runtime)
    return {"now": runtime.clock.now(), "upcoming": [item.as_dict() for item in upcoming(runtime, jobs)],
            "jobs": [asdict(job) for job in jobs]}


def _current_schedules(runtime: Runtime, campaign_ids: set[str]) -> dict[str, Schedule]:
    """The schedule of each campaign's current version: what its next cycle will follow (campaigns/service.py)."""
    if not campaign_ids:
        return {}
    query = (select(campaigns.c.id, campaign_versions.c.definition)
             .join(campaign_versions, campaign_versions.c.id == campaigns.c.current_version_id)
             .where(campaigns.c.id.in_(sorted(campaign_ids))))
    with reading(runtime.engine) as conn:
        rows = conn.execute(query).all()
    schedules: dict[str, Schedule] = {}
    for row in rows:
        raw = (row.definition or {}).get("schedule")
        if raw:
            try:
                schedules[row.id] = Schedule.model_validate(raw)
            except ValidationError:
                continue  # stored by an older release in a shape this one refuses: shown without its recurrence
    return schedules


def _has_job_store(conn: Connection) -> bool:
    return bool(inspect(conn).has_table(SCHEDULER_JOB_TABLE))


def _from_timestamp(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), UTC)


def _describe(runtime: Runtime, job_id: str) -> tuple[str, int | None]:
    """What a job does, in words, and the launch (cycle) it is for."""
    prefix, _, rest = job_id.partition(":")
    if prefix in ("launch", "deadline") and rest.isdigit():
        return ("launch the cycle" if prefix == "launch" else "apply the cycle's deadline"), int(rest)
    if prefix == "housekeeping":
        return HOUSEKEEPING.get(job_id, "housekeeping"), None
    kind = runtime.kinds.get(prefix)
    job = next((job for job in kind.jobs() if job.id == rest), None) if kind is not None else None
    return (job.description if job is not None else "a job this installation no longer defines"), None
