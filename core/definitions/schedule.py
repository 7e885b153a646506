"""When a campaign's cycles happen: one-off start times and cron recurrences in a time zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from ..clock import utc
from ..errors import DefinitionError
from .workflow import Schedule


def cron_trigger(schedule: Schedule, default_timezone: str = "UTC") -> CronTrigger:
    """The trigger for ``schedule.cron``; weekdays are best written as names (mon-fri)."""
    zone_name = schedule.timezone or default_timezone
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DefinitionError([f"schedule.timezone: unknown time zone {zone_name!r}"]) from None
    try:
        return CronTrigger.from_crontab(schedule.cron or "", timezone=zone)
    except ValueError as exc:
        raise DefinitionError([f"schedule.cron: {exc}"]) from None


def next_cycle(schedule: Schedule | None, after: datetime, default_timezone: str = "UTC") -> datetime | None:
    """The first cycle strictly after ``after`` (UTC), or None when the schedule has no more."""
    if schedule is None:
        return None
    if schedule.cron:
        trigger = cron_trigger(schedule, default_timezone)
        fire = trigger.get_next_fire_time(None, utc(after) + timedelta(microseconds=1))
        return utc(fire) if fire else None
    if schedule.start_at is not None and utc(schedule.start_at) > utc(after):
        return utc(schedule.start_at)
    return None


def first_cycle(schedule: Schedule | None, now: datetime, default_timezone: str = "UTC") -> datetime | None:
    """The cycle to schedule when a campaign with a schedule is launched at ``now``."""
    if schedule is None:
        return None
    if schedule.start_at is not None and not schedule.cron:
        return utc(schedule.start_at)
    if schedule.cron and schedule.start_at is not None and utc(schedule.start_at) > now:
        return next_cycle(schedule, utc(schedule.start_at) - timedelta(microseconds=1), default_timezone)
    return next_cycle(schedule, now, default_timezone)
