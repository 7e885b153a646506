"""Local times of day for the waiting steps: the time zone a run follows (its target's own, else the node's), the
next moment a local time comes round, and a time window's next opening, through daylight-saving changes.

Daylight saving: a local time the clocks skip (02:30 on the night they go forward) is taken as if they had not
jumped yet, so it comes the same length of time later (03:30 summer time); a local time that happens twice (01:30 on
the night they go back) is its first occurrence. Moments are compared in UTC, never as wall-clock readings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import cache, lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BeforeValidator

from ...definitions.checking import strict
from ...definitions.reading import shown
from ...definitions.workflow import did_you_mean

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
ATTRIBUTE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$"
MAX_ZONE_NAME = 64  # the longest IANA name is 32 characters; anything longer is not one


def _time_of_day(value: Any) -> Any:
    """"09:00" or "09:00:30" (24-hour). A number is refused by name when a definition is saved: YAML reads an
    unquoted 10:30 as 630 (minutes in base 60), which passed for ten minutes past midnight before; a version stored
    then still loads as it ran."""
    if isinstance(value, time):
        if value.tzinfo is not None and strict():
            raise ValueError("a time of day takes no offset: the node's timezone says which clock it is")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError('must be a time of day as "HH:MM" (24-hour), e.g. "09:00"')
    if not isinstance(value, str):
        if not strict():
            return value  # a version stored before times were checked: read as it was then (seconds)
        read = f"{int(value) // 60}:{int(value) % 60:02d}" if isinstance(value, int) and 0 <= value < 1440 else None
        hint = f' (YAML reads an unquoted {read} as the number {value})' if read else ""
        raise ValueError(f'must be a time of day in quotes, as "HH:MM"{hint}')
    found = TIME_OF_DAY.match(value.strip())
    if found is None:
        raise ValueError(f'{shown(value)} is not a time of day: write "HH:MM" (24-hour), e.g. "09:00"')
    return time(int(found.group(1)), int(found.group(2)), int(found.group(3) or 0))


# A local time of day in a node's config: "09:00".
TimeOfDay = Annotated[time, BeforeValidator(_time_of_day)]


@cache
def _names_by_lower_case() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


@lru_cache(maxsize=4096)
def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone called ``name`` (any letter case, "europe/paris" too), or None when there is none."""
    if not name or len(name) > MAX_ZONE_NAME:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    canonical = _names_by_lower_case().get(name.lower())
    return ZoneInfo(canonical) if canonical else None


def canonical_zone(value: str) -> str:
    """For a node's config: the zone's IANA name as the database spells it, or ValueError saying it is unknown
    (with the closest known name)."""
    zone = zone_named(value)
    if zone is None:
        hint = did_you_mean(value, _names_by_lower_case().values()) if len(value) <= MAX_ZONE_NAME else ""
        raise ValueError(f"unknown time zone {shown(value)} (an IANA name such as Europe/Paris){hint}")
    return zone.key


@dataclass(frozen=True)
class RunZone:
    """The zone a run's waiting step follows, and what its step record says about it."""

    zone: ZoneInfo
    detail: dict[str, str] = field(default_factory=dict)


def run_zone(target: Mapping[str, Any], attribute: str | None, node_zone: str) -> RunZone:
    """The target's own zone, from its ``attribute``, when that holds a known IANA name; else the node's, with the
    reason in the detail, so that the operator sees why a run woke on another clock."""
    fallback = zone_named(node_zone) or ZoneInfo("UTC")
    if attribute is None:
        return RunZone(fallback, {"timezone": fallback.key})
    value = target.get(attribute)
    if isinstance(value, str) and value.strip():
        zone = zone_named(value.strip())
        if zone is not None:
            return RunZone(zone, {"timezone": zone.key, "timezone_from": f"target.{attribute}"})
        why = f"target.{attribute} is {shown(value)}, not a known time zone"
    elif value is None or (isinstance(value, str) and not value.strip()):
        why = f"target.{attribute} is missing"
    else:
        why = f"target.{attribute} is not a time zone name ({type(value).__name__})"
    return RunZone(fallback, {"timezone": fallback.key, "timezone_fallback": f"{why}; the node's {fallback.key} "
                                                                             "is used"})


def at_local(day: Any, moment: time, zone: ZoneInfo) -> datetime:
    """``moment`` on local ``day`` as a UTC instant (a skipped time after the jump, a repeated one the first)."""
    return datetime.combine(day, moment, tzinfo=zone).astimezone(UTC)


def next_local_time(after: datetime, moment: time, zone: ZoneInfo) -> datetime:
    """The first instant at or after ``after`` at which ``zone``'s clocks read ``moment``, in UTC."""
    first_day = after.astimezone(zone).date()
    for offset in range(4):  # a zone that skipped a whole day (Pacific/Apia, 2011) still has one within three
        candidate = at_local(first_day + timedelta(days=offset), moment, zone)
        if candidate >= after:
            return candidate
    raise AssertionError("a local time of day comes round within three days")


def next_window_opening(now: datetime, config: Any, zone: ZoneInfo | None = None) -> datetime:
    """``now`` if inside the window, else the next moment it opens, in ``now``'s zone (UTC). ``zone``: the run's
    own (run_zone), else the node's ``timezone``."""
    zone = zone or ZoneInfo(config.timezone)
    first_day = now.astimezone(zone).date()
    allowed = {WEEKDAYS.index(d) for d in config.days}
    for offset in range(9):
        day = first_day + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        start, end = at_local(day, config.start, zone), at_local(day, config.end, zone)
        if start <= now < end:
            return now
        if start > now:
            return start.astimezone(now.tzinfo)
    raise AssertionError("a week always holds an allowed day")
