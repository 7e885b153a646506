"""When each phishing email goes out: a random moment inside the sending window, in business hours on working days
of the recipient's own time zone, with an optional per-minute throttle over the whole campaign.

Spreading the emails keeps colleagues from warning each other (as Sophos Phish Threat and KnowBe4 do). Everything
here is pure computation on integer UTC seconds: no database and no clock, so a launch can place 100 000 recipients in
a fraction of a second and a seeded ``random.Random`` gives the same plan again.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator

from campaignkit.core.definitions.workflow import Duration, did_you_mean

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
DAY = 86_400
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How far past the launch a recipient without allowed time in the window is looked for, and how long a stretch
# without any allowed time ends the search for room past a full window: a year and a bit covers every real rule
# (weekly days, yearly holidays) and bounds the work when the rules leave nothing at all.
MAX_SEARCH = 400 * DAY
# A time zone's offset is sampled once a day to find its transitions (then bisected to the second): real zones never
# change twice within a day and back, and sampling more often would only slow down long windows.
_OFFSET_STEP = DAY
_FIRST_CHUNK = 7 * DAY  # room past a full window is usually needed for a few days only
_MAX_CHUNK = 64 * DAY
_HOURS = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # Read from the disk once, and only to suggest a name in an error message.
    return frozenset(available_timezones())


@lru_cache(maxsize=4096)
def load_zone(name: str) -> tzinfo | None:
    """The time zone called ``name`` (an IANA name such as ``Europe/Berlin``, surrounding spaces ignored), or None
    when there is none by that name; never raises, whatever the text (audience rows hold anything)."""
    name = name.strip()
    if name == "UTC":
        # No tz database lookup for the default, so that it works even where the system has none.
        return UTC
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: absolute or unnormalised paths and files that are not TZif (zone.tab); OSError: names too long
        # for the file system and the like.
        return None


def valid_zone(name: str) -> bool:
    """Whether ``name`` is a time zone ``place`` will use (otherwise it uses the settings' time_zone)."""
    return load_zone(name) is not None


def parse_hours(value: str) -> tuple[time, time]:
    """``HH:MM-HH:MM`` as (start, end); a ValueError naming the value when it is not that or not start < end."""
    match = _HOURS.fullmatch(value.strip())
    if not match:
        raise ValueError(f"business_hours {value!r} is not HH:MM-HH:MM (e.g. 09:00-17:00)")
    start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
    if max(start_h, end_h) > 23 or max(start_m, end_m) > 59:
        raise ValueError(f"business_hours {value!r} is not a time of day (hours 00-23, minutes 00-59)")
    start, end = time(start_h, start_m), time(end_h, end_m)
    if start >= end:
        raise ValueError(f"business_hours {value!r}: the start must be before the end (hours that cross midnight "
                         "are not supported)")
    return start, end


class SendingSettings(BaseModel):
    """When a simulation's emails go out (a phishing campaign's ``sending:``)."""

    model_config = ConfigDict(extra="forbid")

    send_over: Duration = Field(
        default=timedelta(0), description="Spread the emails over this long after the launch, as an ISO 8601 duration "
        "(P3D, PT6H) or seconds; 0: all at once, as soon as business hours allow.")
    business_hours: str = Field(
        default="09:00-17:00", description="HH:MM-HH:MM, wall-clock time in each recipient's time zone.")
    weekdays: list[str] = Field(
        default=["mon", "tue", "wed", "thu", "fri"], description="The days emails go out on: mon, tue, wed, thu, "
        "fri, sat, sun.")
    holidays: list[date] = Field(
        default=[], description="Dates (YYYY-MM-DD) no email goes out on, in each recipient's time zone.")
    time_zone: str = Field(
        default="UTC", description="IANA time zone (Europe/Berlin) of recipients without a valid one of their own.")
    per_minute: int | None = Field(
        default=None, ge=1, description="At most this many emails in any minute of the whole campaign; unset: no "
        "limit. When the window is too short, the last emails go out after it (nobody is left out).")
    business_hours_only: bool = Field(
        default=True, description="false: any time of any day within the window (business_hours, weekdays and "
        "holidays are ignored).")

    @field_validator("business_hours")
    @classmethod
    def _business_hours(cls, value: str) -> str:
        start, end = parse_hours(value)
        return f"{start:%H:%M}-{end:%H:%M}"  # normalised: 9:00 - 17:00 is stored as 09:00-17:00

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: list[str]) -> list[str]:
        days: list[str] = []
        for raw in value:
            day = raw.strip().lower()
            if day not in WEEKDAYS:
                raise ValueError(f"weekdays: unknown day {raw!r} (use {', '.join(WEEKDAYS)})")
            if day not in days:
                days.append(day)
        if not days:
            raise ValueError("weekdays is empty: name at least one day (mon, tue, ...)")
        return days

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        if not valid_zone(value):
            hint = did_you_mean(value.strip(), _zone_names())
            raise ValueError(f"time_zone {value!r} is not an IANA time zone name such as Europe/Berlin or UTC{hint}")
        return value.strip()

    def hours(self) -> tuple[time, time]:
        """Business hours as (start, end): an email may go out from start up to, not including, end."""
        return parse_hours(self.business_hours)

    def weekday_numbers(self) -> frozenset[int]:
        """The allowed days as ``datetime.weekday()`` numbers (Monday 0)."""
        return frozenset(WEEKDAYS.index(day) for day in self.weekdays)

    def zone(self) -> tzinfo:
        """The default time zone."""
        zone = load_zone(self.time_zone)
        if zone is None:  # only when the tz database changed since validation; UTC keeps a launch going
            return UTC
        return zone


class _Rules:
    """The settings in the form the interval computation uses: seconds since local midnight and day numbers."""

    def __init__(self, settings: SendingSettings) -> None:
        start, end = settings.hours()
        self.open = start.hour * 3600 + start.minute * 60
        self.close = end.hour * 3600 + end.minute * 60
        self.weekdays = settings.weekday_numbers()
        epoch_day = EPOCH.date()
        self.holidays = frozenset((day - epoch_day).days for day in settings.holidays)
        self.any_time = not settings.business_hours_only


def _offset(zone: tzinfo, moment: int) -> int:
    """The zone's UTC offset in seconds at UTC second ``moment``."""
    offset = datetime.fromtimestamp(moment, zone).utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


def _offset_segments(zone: tzinfo, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """[lo, hi) cut at the zone's transitions: (start, end, offset) with one UTC offset each."""
    segments: list[tuple[int, int, int]] = []
    begin, offset, probe = lo, _offset(zone, lo), lo
    while probe < hi:
        ahead = min(probe + _OFFSET_STEP, hi)
        if _offset(zone, ahead) == offset:
            probe = ahead
            continue
        before, after = probe, ahead  # offset at `before` is the current one, at `after` it is not
        while after - before > 1:
            middle = (before + after) // 2
            if _offset(zone, middle) == offset:
                before = middle
            else:
                after = middle
        segments.append((begin, after, offset))
        # Scanning on from the transition itself finds a second one within the same day, should a zone have one.
        begin, offset, probe = after, _offset(zone, after), after
    segments.append((begin, hi, offset))
    return segments


def _allowed(rules: _Rules, zone: tzinfo, lo: int, hi: int) -> list[tuple[int, int]]:
    """The allowed UTC seconds within [lo, hi) for a recipient in ``zone``, as sorted, disjoint [start, end) pairs.

    Business hours are wall-clock hours, so each stretch of constant UTC offset is handled on its own: wall time is
    UTC + offset there, and an interval edge is exact across DST. A spring-forward gap simply has no wall time to
    allow, and an hour repeated in autumn is allowed twice, as the recipient's clock shows it twice.
    """
    if rules.any_time:
        return [(lo, hi)] if lo < hi else []
    intervals: list[tuple[int, int]] = []
    for begin, end, offset in _offset_segments(zone, lo, hi):
        wall_begin, wall_end = begin + offset, end + offset
        for day in range(wall_begin // DAY, (wall_end - 1) // DAY + 1):
            # 1970-01-01, day 0, was a Thursday (weekday 3).
            if (day + 3) % 7 not in rules.weekdays or day in rules.holidays:
                continue
            start = max(day * DAY + rules.open, wall_begin) - offset
            stop = min(day * DAY + rules.close, wall_end) - offset
            if start >= stop:
                continue
            if intervals and intervals[-1][1] == start:  # one stretch cut only by a transition of the offset
                intervals[-1] = (intervals[-1][0], stop)
            else:
                intervals.append((start, stop))
    return intervals


def _seconds(moment: datetime) -> tuple[int, bool]:
    """A UTC moment as whole seconds since the epoch (rounded down), and whether it had a fraction of a second."""
    whole, rest = divmod(moment - EPOCH, timedelta(seconds=1))
    return whole, bool(rest)


def _as_utc(moment: datetime) -> datetime:
    # Naive moments are UTC, as the database returns launch times on SQLite.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class _ZonePlan:
    """One time zone's allowed seconds from the window's start: those inside the window (to draw from), then those
    after it (for the first moment after an empty window, and for room past a full one), extended on demand."""

    def __init__(self, rules: _Rules, zone: tzinfo, window_start: int, window_end: int) -> None:
        self.rules, self.zone, self.window_start = rules, zone, window_start
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.horizon = window_start  # the intervals are complete up to here
        self.chunk = _FIRST_CHUNK
        self.exhausted = False
        self._add(_allowed(rules, zone, window_start, window_end))
        self.horizon = window_end
        # Drawing a uniform second: `bases[i] + r` for the i with totals[i-1] <= r < totals[i] (bisect), where totals
        # are the cumulative durations; weighting by duration keeps a long afternoon from being under-sampled.
        self.totals: list[int] = []
        self.bases: list[int] = []
        total = 0
        for start, end in zip(self.starts, self.ends, strict=True):
            self.bases.append(start - total)
            total += end - start
            self.totals.append(total)
        self.total = total
        self.first = window_start
        if not total:
            while not self.starts and self.horizon < window_start + MAX_SEARCH:
                self.extend()
            if not self.starts:  # the rules allow no time at all (every allowed day a holiday): send at the start
                self.exhausted = True
                self.starts.append(window_start)
                self.ends.append(self.horizon)
            self.first = self.starts[0]

    def _add(self, intervals: list[tuple[int, int]]) -> None:
        for start, end in intervals:
            if self.ends and self.ends[-1] == start:
                self.ends[-1] = end  # bases keep the draw right: they depend on starts only
            else:
                self.starts.append(start)
                self.ends.append(end)

    def extend(self) -> None:
        """Adds the allowed time of the next chunk past the horizon."""
        lo, hi = self.horizon, self.horizon + self.chunk
        self.chunk = min(self.chunk * 2, _MAX_CHUNK)
        last = self.ends[-1] if self.ends else self.window_start
        if not self.exhausted and lo - last > MAX_SEARCH:
            # So long without allowed time that the rules allow none any more: room is found right after, rather
            # than searching forever or leaving recipients out.
            self.exhausted = True
        self._add([(lo, hi)] if self.exhausted else _allowed(self.rules, self.zone, lo, hi))
        self.horizon = hi

    def draw(self, rng: random.Random) -> int:
        """A uniformly random allowed second of the window, or the first allowed one after it when it has none."""
        if not self.total:
            return self.first
        pick = rng.randrange(self.total)
        return self.bases[bisect_right(self.totals, pick)] + pick

    def minute_span(self, minute: int) -> tuple[int, int]:
        """The allowed seconds [lo, hi) of the first minute at or after ``minute`` that has any (lo // 60 is it)."""
        second = minute * 60
        while True:
            while self.horizon < second + 60:
                self.extend()
            index = bisect_right(self.starts, second + 59) - 1
            if index >= 0 and self.ends[index] > second:
                return max(second, self.starts[index]), min(second + 60, self.ends[index])
            # The next interval's minute; without one, nothing is allowed up to the horizon: look on from there.
            following = self.starts[index + 1] if index + 1 < len(self.starts) else self.horizon
            second = following // 60 * 60

    def allowed_minutes(self, window_end: int) -> int:
        """How many UTC minutes have allowed seconds inside the window."""
        count, last = 0, None
        for start, end in zip(self.starts, self.ends, strict=True):
            start, end = max(start, self.window_start), min(end, window_end)
            if start >= end:
                continue
            first, final = start // 60, (end - 1) // 60
            count += final - first + 1 - (1 if first == last else 0)  # a minute shared with the previous interval
            last = final
        return count


class SendPlanner:
    """Places each recipient's email in the window ``[start, start + send_over]`` of one launch.

    Each recipient gets a uniformly random second of the time allowed in their own zone (business hours on allowed
    weekdays that are not holidays); without any in the window, the first allowed second after it. With
    ``per_minute``, a full UTC minute passes the recipient on to the next minute with room that is allowed for them.
    Zones' allowed intervals are computed once per planner; ``place`` is a dictionary look-up and a bisection.
    """

    def __init__(self, settings: SendingSettings, start: datetime, rng: random.Random) -> None:
        self.settings = settings
        self.start = _as_utc(start)
        self.end = self.start + settings.send_over
        self._rng = rng
        first, fraction = _seconds(self.start)
        # Never before the launch: a launch at 12:00:00.4 sends from 12:00:01; the window's last second is included.
        self._window_start = first + fraction
        self._window_end = _seconds(self.end)[0] + 1
        self._rules = _Rules(settings)
        self._default = settings.zone()
        self._per_minute = settings.per_minute
        self._plans: dict[str | None, _ZonePlan] = {}  # by the name as given, bad names included
        self._zone_plans: dict[str, _ZonePlan] = {}  # by the zone, so that aliases and spacing share a plan
        self._sent: dict[int, int] = {}  # UTC minute -> emails placed in it
        self._full: dict[int, int] = {}  # full minute -> a later minute to look at (union-find, path-compressed)

    def place(self, time_zone: str | None) -> datetime:
        """The UTC moment this recipient's email goes out; ``time_zone`` is theirs (an invalid or empty one means the
        settings' time_zone)."""
        plan = self._plans.get(time_zone)
        if plan is None:
            plan = self._plan(time_zone)
        moment = plan.draw(self._rng)
        if self._per_minute is not None:
            moment = self._throttle(plan, moment, self._per_minute)
        return datetime.fromtimestamp(moment, UTC)

    def allowed_minutes(self, time_zone: str | None = None) -> int:
        """How many UTC minutes of the window have time allowed for a recipient in ``time_zone``."""
        return self._plan(time_zone).allowed_minutes(self._window_end)

    def _plan(self, name: str | None) -> _ZonePlan:
        zone = (load_zone(name) if name else None) or self._default
        # With any time allowed, the zone does not matter: one plan for everybody.
        key = "" if self._rules.any_time else str(zone)
        plan = self._zone_plans.get(key)
        if plan is None:
            plan = _ZonePlan(self._rules, zone, self._window_start, self._window_end)
            self._zone_plans[key] = plan
        self._plans[name] = plan
        return plan

    def _throttle(self, plan: _ZonePlan, moment: int, limit: int) -> int:
        """``moment`` if its minute has room, else a moment in the next minute with room allowed for the plan."""
        minute = moment // 60
        if self._sent.get(minute, 0) >= limit:
            minute += 1
            while True:
                minute = self._free(minute)
                lo, hi = plan.minute_span(minute)
                if lo // 60 == minute:
                    break
                minute = lo // 60  # the next minute allowed for this recipient; it may be full in turn
            moment = lo + self._rng.randrange(hi - lo)  # spread within the minute, as the first draw would be
        sent = self._sent.get(minute, 0) + 1
        self._sent[minute] = sent
        if sent >= limit:
            self._full[minute] = minute + 1
        return moment

    def _free(self, minute: int) -> int:
        """The first minute at or after ``minute`` that is not full."""
        root = minute
        while root in self._full:
            root = self._full[root]
        while minute != root:  # path compression: later searches jump over the whole full stretch at once
            following = self._full[minute]
            self._full[minute] = root
            minute = following
        return root


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def capacity_problem(settings: SendingSettings, recipients: int, start: datetime) -> str | None:
    """Why the throttle cannot fit ``recipients`` into the window's allowed minutes in the settings' time_zone, or
    None when it can (or there is no throttle). A launch shows it as a warning: the last emails go out later."""
    limit = settings.per_minute
    if limit is None or recipients <= 0:
        return None
    needed = -(-recipients // limit)
    available = SendPlanner(settings, start, random.Random(0)).allowed_minutes(settings.time_zone)
    if needed <= available:
        return None
    verb = "needs" if recipients == 1 else "need"
    return (f"{_plural(recipients, 'recipient')} at {limit} per minute {verb} {_plural(needed, 'minute')} of sending; "
            f"the window has {_plural(available, 'allowed minute')} in {settings.time_zone}, so the last emails go "
            "out after it ends")
