"""When each phishing email goes out: business hours in the recipient's zone, weekends and holidays skipped, the
window used evenly, DST, the per-minute throttle, settings validation and the launch's capacity warning."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from campaignkit.plugins.phishing.planning import (
    WEEKDAYS,
    SendingSettings,
    SendPlanner,
    capacity_problem,
    valid_zone,
)

MONDAY = datetime(2026, 1, 12, tzinfo=UTC)  # 00:00 UTC, winter: Berlin is UTC+1, New York UTC-5
FRIDAY = datetime(2026, 1, 16, tzinfo=UTC)
SATURDAY = datetime(2026, 1, 17, tzinfo=UTC)


def settings(**values: Any) -> SendingSettings:
    return SendingSettings.model_validate(values)


def place(config: SendingSettings, start: datetime, zones: list[str | None], seed: int = 7) -> list[datetime]:
    planner = SendPlanner(config, start, random.Random(seed))
    return [planner.place(zone) for zone in zones]


def local(moment: datetime, zone: str | None) -> datetime:
    return moment.astimezone(ZoneInfo(zone or "UTC"))


def assert_allowed(config: SendingSettings, moments: list[datetime], zones: list[str | None]) -> None:
    """Each moment is a whole UTC second in business hours, on an allowed weekday that is no holiday, in its zone."""
    opening, closing = config.hours()
    for moment, zone in zip(moments, zones, strict=True):
        assert moment.utcoffset() == timedelta(0) and moment.microsecond == 0
        wall = local(moment, zone if zone and valid_zone(zone) else config.time_zone)
        assert opening <= wall.time() < closing, (zone, wall)
        assert WEEKDAYS[wall.weekday()] in config.weekdays, (zone, wall)
        assert wall.date() not in config.holidays, (zone, wall)


def test_every_moment_is_in_business_hours_on_a_working_day_in_the_recipients_zone() -> None:
    config = settings(send_over="P6D", holidays=["2026-01-14"], time_zone="Europe/Berlin")
    # Half- and three-quarter-hour offsets, the far side of the date line, and rows without a (valid) zone.
    kinds: list[str | None] = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Asia/Kolkata", "Asia/Kathmandu",
                               "Pacific/Auckland", None, "", "Not/A_Zone"]
    zones = kinds * 300
    moments = place(config, MONDAY, zones)

    assert_allowed(config, moments, zones)
    assert all(MONDAY <= moment <= MONDAY + timedelta(days=6) for moment in moments)


def test_recipients_without_a_valid_zone_get_the_settings_time_zone() -> None:
    config = settings(send_over="P2D", time_zone="America/New_York")
    default = place(config, MONDAY, ["America/New_York"] * 50)
    for row_zone in [None, "", "   ", "Mars/Olympus_Mons", "../../etc/passwd", "zone.tab", "x" * 5000]:
        assert place(config, MONDAY, [row_zone] * 50) == default, row_zone


def test_two_zones_get_their_own_business_hours() -> None:
    config = settings(send_over="P3D")
    berlin = place(config, MONDAY, ["Europe/Berlin"] * 2000)
    new_york = place(config, MONDAY, ["America/New_York"] * 2000)

    # 09:00-17:00 is 08:00-16:00 UTC in Berlin (CET) and 14:00-22:00 UTC in New York (EST) in January.
    assert {moment.hour for moment in berlin} == set(range(8, 16))
    assert {moment.hour for moment in new_york} == set(range(14, 22))


def test_moments_spread_over_the_whole_window() -> None:
    config = settings(send_over="P3D", time_zone="Europe/Berlin")
    moments = place(config, MONDAY, [None] * 3000)

    days = Counter(local(moment, "Europe/Berlin").date() for moment in moments)
    assert set(days) == {date(2026, 1, 12), date(2026, 1, 13), date(2026, 1, 14)}
    assert all(800 < count < 1200 for count in days.values()), days  # a third each, give or take
    assert {local(moment, "Europe/Berlin").hour for moment in moments} == set(range(9, 17))
    assert len(set(moments)) > 2900  # second resolution: hardly two the same


def test_a_long_afternoon_is_not_under_sampled() -> None:
    # Monday 16:00 Berlin to Tuesday 16:00: one business hour on Monday, seven on Tuesday.
    config = settings(send_over="P1D", time_zone="Europe/Berlin")
    moments = place(config, datetime(2026, 1, 12, 15, tzinfo=UTC), [None] * 8000)

    monday = sum(local(moment, "Europe/Berlin").day == 12 for moment in moments) / len(moments)
    assert 0.10 < monday < 0.15  # 1/8


def test_weekends_and_holidays_are_skipped() -> None:
    # Friday 00:00 to Tuesday 00:00 with Monday a holiday: only Friday is left.
    config = settings(send_over="P4D", holidays=["2026-01-19"])
    moments = place(config, FRIDAY, [None] * 1000)
    assert {moment.date() for moment in moments} == {date(2026, 1, 16)}

    weekend = settings(send_over="P4D", weekdays=["sat", "sun"])
    assert {moment.date() for moment in place(weekend, FRIDAY, [None] * 1000)} == {date(2026, 1, 17),
                                                                                  date(2026, 1, 18)}


def test_a_window_without_allowed_time_sends_at_the_first_allowed_moment_after_it() -> None:
    weekend = settings(send_over="PT6H")
    planner = SendPlanner(weekend, SATURDAY + timedelta(hours=10), random.Random(1))
    # Monday 09:00 local in each zone.
    assert planner.place("Europe/Berlin") == datetime(2026, 1, 19, 8, tzinfo=UTC)
    assert planner.place("America/New_York") == datetime(2026, 1, 19, 14, tzinfo=UTC)
    assert planner.place(None) == datetime(2026, 1, 19, 9, tzinfo=UTC)

    # All at once (send_over 0) at night: the next morning, and a holiday pushes it a day further.
    night = datetime(2026, 1, 13, 2, tzinfo=UTC)
    assert place(settings(), night, ["Europe/Berlin"]) == [datetime(2026, 1, 13, 8, tzinfo=UTC)]
    holiday = settings(holidays=["2026-01-13"])
    assert place(holiday, night, ["Europe/Berlin"]) == [datetime(2026, 1, 14, 8, tzinfo=UTC)]
    # Late Friday evening in Berlin is still Friday afternoon in New York.
    friday_evening = FRIDAY + timedelta(hours=20)
    assert place(settings(), friday_evening, ["Europe/Berlin", "America/New_York"]) == [
        datetime(2026, 1, 19, 8, tzinfo=UTC), friday_evening]


def test_all_at_once_in_business_hours_sends_at_the_start_never_before() -> None:
    start = MONDAY + timedelta(hours=10, microseconds=250_000)
    assert place(settings(), start, [None, "Europe/Berlin"]) == [MONDAY + timedelta(hours=10, seconds=1)] * 2
    # Naive launch times are UTC, as the database returns them on SQLite.
    assert place(settings(), datetime(2026, 1, 12, 10), [None]) == [MONDAY + timedelta(hours=10)]


def test_rules_that_allow_no_time_at_all_send_at_the_start() -> None:
    saturdays = [date(2026, 1, 17) + timedelta(weeks=week) for week in range(70)]
    config = settings(send_over="P2D", weekdays=["sat"], holidays=saturdays, per_minute=2)
    start = MONDAY + timedelta(hours=3)
    moments = place(config, start, [None] * 5)
    # Two per minute from the start on: nobody is left out.
    assert [moment - start for moment in moments[:2]] == [timedelta(0), timedelta(0)]
    assert Counter(moment.replace(second=0) for moment in moments) == {
        start: 2, start + timedelta(minutes=1): 2, start + timedelta(minutes=2): 1}


def test_business_hours_only_false_uses_any_time_of_any_day() -> None:
    config = settings(send_over="P2D", business_hours_only=False)
    moments = place(config, SATURDAY, ["Europe/Berlin", "Asia/Tokyo"] * 2000)
    assert {moment.hour for moment in moments} == set(range(24))
    assert {moment.date() for moment in moments} == {date(2026, 1, 17), date(2026, 1, 18)}
    assert all(SATURDAY <= moment <= SATURDAY + timedelta(days=2) for moment in moments)


def test_the_throttle_never_exceeds_per_minute_and_loses_nobody() -> None:
    # Two hours at 7 a minute hold 840 emails: the other 1160 go out in the next business hours.
    config = settings(send_over="PT2H", per_minute=7)
    zones: list[str | None] = [None, "Europe/London", "Europe/Berlin", "America/New_York"] * 500
    start = MONDAY + timedelta(hours=9)
    moments = place(config, start, zones)

    assert len(moments) == 2000
    per_minute = Counter(moment.replace(second=0) for moment in moments)
    assert max(per_minute.values()) <= 7
    assert_allowed(config, moments, zones)  # moved recipients too stay in their own business hours
    assert all(moment >= start for moment in moments)
    assert sum(moment > start + timedelta(hours=2) for moment in moments) >= 2000 - 840


def test_a_throttle_with_room_keeps_everybody_in_the_window() -> None:
    config = settings(send_over="P3D", per_minute=3)
    zones: list[str | None] = ["Europe/Berlin", "America/New_York", "Asia/Tokyo"] * 1000
    moments = place(config, MONDAY, zones)

    assert max(Counter(moment.replace(second=0) for moment in moments).values()) <= 3
    assert all(MONDAY <= moment <= MONDAY + timedelta(days=3) for moment in moments)
    assert_allowed(config, moments, zones)


def test_the_throttle_spreads_an_all_at_once_launch() -> None:
    config = settings(per_minute=10)
    moments = place(config, SATURDAY, ["Europe/Berlin"] * 95)
    minutes = Counter(moment.replace(second=0) for moment in moments)
    monday_nine = datetime(2026, 1, 19, 8, tzinfo=UTC)
    assert minutes == {monday_nine + timedelta(minutes=index): 10 for index in range(9)} | {
        monday_nine + timedelta(minutes=9): 5}


@pytest.mark.parametrize(("zone", "start", "before", "after"), [
    # Berlin moves to CEST on the last Sunday of March (2026-03-29): 09:00-17:00 is 08-16 UTC before, 07-15 after.
    ("Europe/Berlin", datetime(2026, 3, 27, tzinfo=UTC), set(range(8, 16)), set(range(7, 15))),
    # New York moves to EDT on the second Sunday of March (2026-03-08): 14-22 UTC before, 13-21 after.
    ("America/New_York", datetime(2026, 3, 6, tzinfo=UTC), set(range(14, 22)), set(range(13, 21))),
    # And back on the last Sunday of October (2026-10-25).
    ("Europe/Berlin", datetime(2026, 10, 23, tzinfo=UTC), set(range(7, 15)), set(range(8, 16))),
])
def test_dst_weeks_keep_local_business_hours(zone: str, start: datetime, before: set[int], after: set[int]) -> None:
    config = settings(send_over="P5D")
    moments = place(config, start, [zone] * 6000)

    assert_allowed(config, moments, [zone] * len(moments))
    friday = {moment.hour for moment in moments if local(moment, zone).date() == start.date()}
    monday = {moment.hour for moment in moments if local(moment, zone).date() == start.date() + timedelta(days=3)}
    assert (friday, monday) == (before, after)


def test_business_hours_in_a_dst_gap_or_fold_follow_the_wall_clock() -> None:
    berlin = "Europe/Berlin"
    every_day = list(WEEKDAYS)
    # 02:00-03:00 does not exist on 2026-03-29 in Berlin: nobody gets an email that day, and nothing crashes.
    gap = settings(send_over="P3D", business_hours="02:00-03:00", weekdays=every_day)
    moments = place(gap, datetime(2026, 3, 28, tzinfo=UTC), [berlin] * 3000)
    assert {local(moment, berlin).date() for moment in moments} == {date(2026, 3, 28), date(2026, 3, 30)}
    assert_allowed(gap, moments, [berlin] * len(moments))

    # 02:30-04:00 that day is 03:00-04:00 on the clock: an hour, after the jump.
    partly = settings(send_over="P1D", business_hours="02:30-04:00", weekdays=every_day)
    sunday = place(partly, datetime(2026, 3, 29, tzinfo=UTC), [berlin] * 1000)
    assert all(time(3) <= local(moment, berlin).time() < time(4) for moment in sunday)
    assert {moment.hour for moment in sunday} == {1}

    # On 2026-10-25 the clock shows 02:00-03:00 twice (CEST, then CET): both hours get emails, twice Saturday's share.
    fold = settings(send_over="P2D", business_hours="02:00-03:00", weekdays=every_day)
    moments = place(fold, datetime(2026, 10, 24, tzinfo=UTC), [berlin] * 6000)
    assert_allowed(fold, moments, [berlin] * len(moments))
    days = Counter(local(moment, berlin).date() for moment in moments)
    assert 1.7 < days[date(2026, 10, 25)] / days[date(2026, 10, 24)] < 2.3
    assert {moment.hour for moment in moments if moment.date() == date(2026, 10, 25)} == {0, 1}


def test_determinism_with_a_seeded_rng() -> None:
    config = settings(send_over="P3D", per_minute=2)
    zones: list[str | None] = ["Europe/Berlin", "America/New_York", None] * 300
    assert place(config, MONDAY, zones, seed=42) == place(config, MONDAY, zones, seed=42)
    assert place(config, MONDAY, zones, seed=42) != place(config, MONDAY, zones, seed=43)


def test_settings_defaults_and_parsing() -> None:
    default = SendingSettings()
    assert default.send_over == timedelta(0)
    assert default.hours() == (time(9), time(17))
    assert default.weekdays == ["mon", "tue", "wed", "thu", "fri"]
    assert (default.time_zone, default.per_minute, default.business_hours_only) == ("UTC", None, True)

    parsed = settings(send_over="P3D", business_hours=" 8:30 - 16:45 ", weekdays=["Mon", "sat", "mon"],
                      holidays=["2026-12-24"], time_zone=" Europe/Berlin ")
    assert parsed.send_over == timedelta(days=3)
    assert settings(send_over="PT6H").send_over == timedelta(hours=6)
    assert parsed.business_hours == "08:30-16:45"
    assert parsed.hours() == (time(8, 30), time(16, 45))
    assert parsed.weekdays == ["mon", "sat"]
    assert parsed.weekday_numbers() == {0, 5}
    assert parsed.holidays == [date(2026, 12, 24)]
    assert parsed.time_zone == "Europe/Berlin"


@pytest.mark.parametrize(("field", "value", "fragments"), [
    ("business_hours", "9-17", ["business_hours '9-17' is not HH:MM-HH:MM"]),
    ("business_hours", "17:00-09:00", ["business_hours '17:00-09:00': the start must be before the end"]),
    ("business_hours", "09:00-09:00", ["business_hours '09:00-09:00': the start must be before the end"]),
    ("business_hours", "09:00-24:00", ["business_hours '09:00-24:00' is not a time of day"]),
    ("weekdays", ["mon", "monday"], ["weekdays: unknown day 'monday'"]),
    ("weekdays", [], ["weekdays is empty"]),
    ("time_zone", "Europe/Berln", ["time_zone 'Europe/Berln' is not an IANA time zone name"]),
    ("time_zone", "", ["time_zone '' is not an IANA time zone name"]),
    ("per_minute", 0, ["per_minute", "greater than or equal to 1", "input_value=0"]),
    ("send_over", -60, ["send_over", "must not be negative", "input_value=-60"]),
    ("send_over", "P3 days", ["send_over", "input_value='P3 days'"]),
    ("holidays", ["2026-13-01"], ["holidays.0", "input_value='2026-13-01'"]),
    ("sendover", "P3D", ["sendover", "Extra inputs are not permitted"]),
])
def test_invalid_settings_name_the_field_and_the_value(field: str, value: Any, fragments: list[str]) -> None:
    with pytest.raises(ValidationError) as raised:
        settings(**{field: value})
    text = str(raised.value)
    assert all(fragment in text for fragment in fragments), text


def test_a_misspelt_time_zone_gets_a_suggestion() -> None:
    with pytest.raises(ValidationError, match="did you mean 'Europe/Berlin'"):
        settings(time_zone="Europe/Berln")


def test_valid_zone() -> None:
    assert valid_zone("Europe/Berlin") and valid_zone("UTC") and valid_zone("America/Argentina/Buenos_Aires")
    for bad in ["", "  ", "Europe", "europe/berlin", "Mars/Olympus_Mons", "/etc/passwd", "../x", "zone.tab",
                "a\x00b", "x" * 5000]:
        assert not valid_zone(bad), bad


def test_capacity_problem_names_the_shortfall() -> None:
    # Monday 00:00 to Tuesday 00:00: business hours 09:00-17:00 are 480 minutes.
    config = settings(send_over="P1D", per_minute=50)
    assert capacity_problem(config, 100_000, MONDAY) == (
        "100000 recipients at 50 per minute need 2000 minutes of sending; the window has 480 allowed minutes in UTC, "
        "so the last emails go out after it ends")
    assert capacity_problem(config, 24_000, MONDAY) is None  # exactly full
    assert capacity_problem(config, 24_001, MONDAY) is not None
    assert capacity_problem(settings(send_over="P1D"), 10**9, MONDAY) is None  # no throttle
    assert capacity_problem(config, 0, MONDAY) is None

    # In the settings' time zone: 14:00 UTC is 15:00 in Berlin, two business hours before the window's night.
    berlin = settings(send_over="PT10H", per_minute=1, time_zone="Europe/Berlin")
    assert capacity_problem(berlin, 200, MONDAY + timedelta(hours=14)) == (
        "200 recipients at 1 per minute need 200 minutes of sending; the window has 120 allowed minutes in "
        "Europe/Berlin, so the last emails go out after it ends")

    # All at once over a weekend: nothing is allowed in the window.
    weekend = settings(per_minute=10)
    assert capacity_problem(weekend, 1, SATURDAY) == (
        "1 recipient at 10 per minute needs 1 minute of sending; the window has 0 allowed minutes in UTC, so the last "
        "emails go out after it ends")
