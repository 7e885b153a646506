"""Recipients' own time zones: time_window and time_delay's `at` follow the zone a target's attribute names, fall back
to the node's (saying so in the step record), and keep to the local clock through daylight-saving changes, through
the real engine and database."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from campaignkit.core.clock import FakeClock
from campaignkit.core.engine.steps.local_time import next_local_time
from campaignkit.core.errors import DefinitionError


def flow(*nodes: str, name: str = "Zones") -> str:
    body = "\n".join(f"    - {node}" for node in nodes)
    return f"name: {name}\nworkflow:\n  nodes:\n{body}\n"


def morning(config: str) -> str:
    return flow("{id: start, type: entered_campaign, next: morning}",
                f"{{id: morning, type: time_delay, config: {config}, next: end}}",
                "{id: end, type: left_campaign}")


def step(harness: Any, run_id: int, node_id: str) -> Any:
    return next(s for s in harness.steps(run_id) if s.node_id == node_id)


PEOPLE = ("key,time_zone\n"
          "paris,Europe/Paris\n"
          "new-york,America/New_York\n"
          "tokyo,Asia/Tokyo\n"
          "sydney,Australia/Sydney\n"
          "lower-case,europe/london\n"
          "nowhere,\n"
          "mars,Mars/Olympus_Mons\n")


def test_a_delay_at_nine_wakes_each_target_at_nine_on_its_own_clock(harness: Any, clock: FakeClock) -> None:
    clock.set(datetime(2030, 1, 15, 12, 0, tzinfo=UTC))  # a Tuesday in winter in the north, summer in Sydney
    campaign_id = harness.create(morning(
        "{duration: PT1H, at: '09:00', timezone_attribute: time_zone, timezone: America/Los_Angeles}"))
    harness.launch(campaign_id, harness.csv(PEOPLE))
    harness.run_to_idle()
    due = {run.target_key: run.due_at for run in harness.runs(campaign_id)}
    assert due == {
        "paris": datetime(2030, 1, 16, 8, 0, tzinfo=UTC),  # 09:00 CET, the next morning
        "new-york": datetime(2030, 1, 15, 14, 0, tzinfo=UTC),  # 07:00 in New York now: 09:00 comes after the hour
        "tokyo": datetime(2030, 1, 16, 0, 0, tzinfo=UTC),  # 21:00 in Tokyo now
        "sydney": datetime(2030, 1, 15, 22, 0, tzinfo=UTC),  # 23:00 in Sydney (AEDT, +11): 09:00 comes first there
        "lower-case": datetime(2030, 1, 16, 9, 0, tzinfo=UTC),  # any letter case names the zone
        "nowhere": datetime(2030, 1, 15, 17, 0, tzinfo=UTC),  # no zone: the node's, Los Angeles (PST, -8)
        "mars": datetime(2030, 1, 15, 17, 0, tzinfo=UTC),  # not a zone: the node's too
    }
    runs = {run.target_key: run for run in harness.runs(campaign_id)}
    paris = step(harness, runs["paris"].id, "morning")
    assert paris.outcome == "waiting"
    assert paris.detail == {"timezone": "Europe/Paris", "timezone_from": "target.time_zone",
                            "local_time": "2030-01-16T09:00:00+01:00"}
    assert step(harness, runs["lower-case"].id, "morning").detail["timezone"] == "Europe/London"
    # The operator reads why a run woke on another clock than its target's.
    assert step(harness, runs["nowhere"].id, "morning").detail["timezone_fallback"] == (
        "target.time_zone is missing; the node's America/Los_Angeles is used")
    mars = step(harness, runs["mars"].id, "morning").detail
    assert mars["timezone"] == "America/Los_Angeles" and mars["timezone_fallback"] == (
        "target.time_zone is 'Mars/Olympus_Mons', not a known time zone; the node's America/Los_Angeles is used")
    assert mars["local_time"] == "2030-01-15T09:00:00-08:00"

    # Each wakes at its own moment, not before, and the finished step keeps saying which clock it followed.
    for moment in sorted(set(due.values())):
        clock.set(moment - timedelta(seconds=1))
        harness.run_to_idle()
        waiting = {r.target_key for r in harness.runs(campaign_id) if r.status == "waiting"}
        assert waiting == {key for key, at in due.items() if at >= moment}
        clock.set(moment)
        harness.run_to_idle()
        waiting = {r.target_key for r in harness.runs(campaign_id) if r.status == "waiting"}
        assert waiting == {key for key, at in due.items() if at > moment}
    finished = step(harness, runs["tokyo"].id, "morning")
    assert finished.outcome == "ok" and finished.finished_at == due["tokyo"]
    assert finished.detail["timezone"] == "Asia/Tokyo" and finished.detail["local_time"] == "2030-01-16T09:00:00+09:00"


def test_a_time_window_opens_on_each_target_s_own_office_hours(harness: Any, clock: FakeClock) -> None:
    clock.set(datetime(2030, 1, 18, 16, 30, tzinfo=UTC))  # Friday: 17:30 in Paris, 11:30 in New York, Sat 01:30 Tokyo
    campaign_id = harness.create(flow(
        "{id: start, type: entered_campaign, next: office}",
        "{id: office, type: time_window, config: {days: [mon, tue, wed, thu, fri], start: '09:00', end: '17:00', "
        "timezone: UTC, timezone_attribute: time_zone}, next: end}",
        "{id: end, type: left_campaign}"))
    harness.launch(campaign_id, harness.csv(PEOPLE))
    harness.run_to_idle()
    runs = {run.target_key: run for run in harness.runs(campaign_id)}
    assert runs["new-york"].status == "completed"  # inside its window: it passes at once
    assert step(harness, runs["new-york"].id, "office").detail == {
        "timezone": "America/New_York", "timezone_from": "target.time_zone",
        "local_time": "2030-01-18T11:30:00-05:00"}
    assert runs["paris"].due_at == datetime(2030, 1, 21, 8, 0, tzinfo=UTC)  # closed for the weekend: Monday 09:00
    assert runs["tokyo"].due_at == datetime(2030, 1, 21, 0, 0, tzinfo=UTC)  # its Saturday already
    assert runs["sydney"].due_at == datetime(2030, 1, 20, 22, 0, tzinfo=UTC)  # Monday 09:00 AEDT
    assert runs["nowhere"].status == "completed"  # the node's UTC: 16:30 is inside 09:00-17:00
    assert "timezone_fallback" in step(harness, runs["nowhere"].id, "office").detail


def test_a_time_window_without_a_target_zone_records_no_zone_detail(harness: Any, clock: FakeClock) -> None:
    clock.set(datetime(2030, 1, 18, 12, 0, tzinfo=UTC))
    campaign_id = harness.create(flow(
        "{id: start, type: entered_campaign, next: office}",
        "{id: office, type: time_window, config: {days: [fri], start: '09:00', end: '17:00', timezone: UTC}, "
        "next: end}",
        "{id: end, type: left_campaign}"))
    harness.launch(campaign_id, harness.csv("key\na\n"))
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    assert run.status == "completed" and step(harness, run.id, "office").detail is None  # as before target zones


DAILY = flow(
    "{id: start, type: entered_campaign, next: morning}",
    "{id: morning, type: time_delay, config: {duration: PT1H, at: '09:00', timezone_attribute: tz}, next: more}",
    "{id: more, type: branch, config: {condition: \"now.strftime('%Y-%m-%d') < context.stop\"}, "
    "edges: {'true': morning, 'false': end}}",
    "{id: end, type: left_campaign}", name="Daily")


def wake_ups(harness: Any, clock: FakeClock, campaign_id: str, count: int) -> list[datetime]:
    """Follow one looping run from wake-up to wake-up; the UTC moments it woke at."""
    woke = []
    for _ in range(count):
        (run,) = harness.runs(campaign_id)
        assert run.status == "waiting", run.error
        woke.append(run.due_at)
        clock.set(run.due_at)
        harness.run_to_idle()
    return woke


@pytest.mark.parametrize(("zone", "start", "expected"), [
    # Europe goes to summer time on Sunday 2030-03-31 at 01:00 UTC: 09:00 is 08:00 UTC before, 07:00 UTC after.
    ("Europe/Berlin", datetime(2030, 3, 28, 12, 0, tzinfo=UTC),
     ["2030-03-29T08:00", "2030-03-30T08:00", "2030-03-31T07:00", "2030-04-01T07:00", "2030-04-02T07:00"]),
    # ... and back on Sunday 2030-10-27.
    ("Europe/Berlin", datetime(2030, 10, 24, 12, 0, tzinfo=UTC),
     ["2030-10-25T07:00", "2030-10-26T07:00", "2030-10-27T08:00", "2030-10-28T08:00", "2030-10-29T08:00"]),
    # North America goes forward on Sunday 2030-03-10 (09:00 EST is 14:00 UTC, EDT 13:00 UTC) ...
    ("America/New_York", datetime(2030, 3, 7, 18, 0, tzinfo=UTC),
     ["2030-03-08T14:00", "2030-03-09T14:00", "2030-03-10T13:00", "2030-03-11T13:00", "2030-03-12T13:00"]),
    # ... and back on Sunday 2030-11-03.
    ("America/Chicago", datetime(2030, 10, 31, 18, 0, tzinfo=UTC),
     ["2030-11-01T14:00", "2030-11-02T14:00", "2030-11-03T15:00", "2030-11-04T15:00", "2030-11-05T15:00"]),
])
def test_nine_o_clock_stays_nine_o_clock_through_a_daylight_saving_week(
        harness: Any, clock: FakeClock, zone: str, start: datetime, expected: list[str]) -> None:
    clock.set(start)
    campaign_id = harness.create(DAILY)
    stop = (start + timedelta(days=len(expected))).strftime("%Y-%m-%d")
    harness.csv(f"key,tz\nsam,{zone}\n")
    harness.launch(campaign_id, harness.folder / "audience.csv")
    with harness.runtime.engine.begin() as conn:  # the loop's end, as an earlier step would have set it
        from campaignkit.core.db.schema import runs
        conn.execute(runs.update().values(context={"stop": stop}))
    harness.run_to_idle()
    woke = wake_ups(harness, clock, campaign_id, len(expected))
    assert [moment.strftime("%Y-%m-%dT%H:%M") for moment in woke] == expected
    assert {moment.astimezone(ZoneInfo(zone)).hour for moment in woke} == {9}
    (run,) = harness.runs(campaign_id)
    assert run.status == "completed"
    records = [s for s in harness.steps(run.id) if s.node_id == "morning"]
    assert [s.finished_at for s in records] == woke  # one ledger row per morning, each woken on time
    assert all(s.detail["timezone"] == zone and s.detail["local_time"].endswith(("+01:00", "+02:00", "-05:00",
                                                                                 "-04:00", "-06:00"))
               for s in records)


def test_a_local_time_the_clocks_skip_comes_after_the_jump_and_one_they_repeat_comes_once() -> None:
    berlin, new_york = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
    # 02:30 does not exist in Berlin on 2030-03-31 (02:00 -> 03:00): the delay ends at 03:30 summer time.
    skipped = next_local_time(datetime(2030, 3, 30, 23, 0, tzinfo=UTC), time(2, 30), berlin)
    assert skipped == datetime(2030, 3, 31, 1, 30, tzinfo=UTC)
    assert skipped.astimezone(berlin).strftime("%H:%M %Z") == "03:30 CEST"
    # 01:30 happens twice in New York on 2030-11-03: the first one (EDT) ...
    first = next_local_time(datetime(2030, 11, 3, 4, 0, tzinfo=UTC), time(1, 30), new_york)
    assert first == datetime(2030, 11, 3, 5, 30, tzinfo=UTC)
    # ... and once past it, the next is the next day's, not the repeat an hour later.
    after_first = next_local_time(first + timedelta(minutes=1), time(1, 30), new_york)
    assert after_first == datetime(2030, 11, 4, 6, 30, tzinfo=UTC)
    # Exactly at the time: now.
    assert next_local_time(first, time(1, 30), new_york) == first


def test_a_window_opening_at_a_skipped_time_opens_after_the_jump(harness: Any, clock: FakeClock) -> None:
    clock.set(datetime(2030, 3, 30, 23, 0, tzinfo=UTC))  # Sunday 00:00 in Berlin, the night clocks go forward
    campaign_id = harness.create(flow(
        "{id: start, type: entered_campaign, next: night}",
        "{id: night, type: time_window, config: {days: [sun], start: '02:30', end: '05:00', timezone: UTC, "
        "timezone_attribute: tz}, next: end}",
        "{id: end, type: left_campaign}"))
    harness.launch(campaign_id, harness.csv("key,tz\nb,Europe/Berlin\n"))
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    assert run.due_at == datetime(2030, 3, 31, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert step(harness, run.id, "night").detail["local_time"] == "2030-03-31T03:30:00+02:00"


@pytest.mark.parametrize(("config", "problem"), [
    ("{duration: PT1H, at: '09:00', timezone: Europe/Pariss}",
     r"test\.yaml:5:\d+: workflow\.nodes\[1\]\.config\.timezone \(node 'morning'\): timezone: Value error, unknown "
     r"time zone 'Europe/Pariss' \(an IANA name such as Europe/Paris\); did you mean 'Europe/Paris'\?"),
    ("{duration: PT1H, at: 10:30}",
     r"config\.at \(node 'morning'\): at: Value error, must be a time of day in quotes, as \"HH:MM\" "
     r"\(YAML reads an unquoted 10:30 as the number 630\)"),
    ("{duration: PT1H, at: '9am'}",
     r"config\.at \(node 'morning'\): at: Value error, '9am' is not a time of day: write \"HH:MM\""),
    ("{duration: PT1H, at: '24:00'}", r"config\.at \(node 'morning'\): at: Value error, '24:00' is not a time of day"),
    ("{duration: PT1H, timezone: Europe/Paris}",
     r"config\.timezone \(node 'morning'\): timezone: Value error, says whose clock `at` reads: give at, e\.g\. "
     r"at: \"09:00\""),
    ("{duration: PT1H, at: '09:00', timezone_attribute: 'time zone'}",
     r"config\.timezone_attribute \(node 'morning'\): timezone_attribute: String should match pattern"),
])
def test_create_refuses_unknown_zones_and_badly_written_times(harness: Any, config: str, problem: str) -> None:
    with pytest.raises(DefinitionError, match=problem):
        harness.create(morning(config))


def test_a_window_s_times_are_checked_too(harness: Any) -> None:
    window = flow("{id: start, type: entered_campaign, next: office}",
                  "{id: office, type: time_window, config: {start: 8:30, end: '17:00', timezone: Europe/Pariss}, "
                  "next: end}",
                  "{id: end, type: left_campaign}")
    with pytest.raises(DefinitionError) as refused:
        harness.create(window)
    text = "\n".join(refused.value.problems)
    # 8:30 unquoted was taken as 00:08:30 before; now it is named, with the zone's problem beside it.
    assert "config.start (node 'office'): start: Value error, must be a time of day in quotes" in text
    assert "8:30 as the number 510" in text
    assert "did you mean 'Europe/Paris'?" in text


def test_lower_case_zone_names_in_a_node_are_stored_as_the_database_spells_them(harness: Any, clock: FakeClock) -> None:
    clock.set(datetime(2030, 1, 15, 12, 0, tzinfo=UTC))
    campaign_id = harness.create(morning("{duration: PT0S, at: '18:00', timezone: asia/tokyo}"))
    harness.launch(campaign_id, harness.csv("key\na\n"))
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    assert run.due_at == datetime(2030, 1, 16, 9, 0, tzinfo=UTC)  # 18:00 JST on the 16th: 21:00 already on the 15th
    assert step(harness, run.id, "morning").detail == {"timezone": "Asia/Tokyo",
                                                       "local_time": "2030-01-16T18:00:00+09:00"}


def test_a_version_stored_with_unquoted_times_still_runs_as_it_did(harness: Any, clock: FakeClock) -> None:
    """Before times were checked, `start: 9:00, end: 17:00` unquoted was stored as 540 and 1020 (read as seconds:
    00:09 to 00:17). Such a version keeps running as it did; only saving it again asks for quotes."""
    from campaignkit.core.db.schema import campaign_versions

    clock.set(datetime(2030, 1, 15, 0, 10, tzinfo=UTC))
    window = flow("{id: start, type: entered_campaign, next: office}",
                  "{id: office, type: time_window, config: {days: [tue], start: '00:09', end: '00:17'}, next: end}",
                  "{id: end, type: left_campaign}")
    campaign_id = harness.create(window)
    with harness.runtime.engine.begin() as conn:
        stored = conn.execute(campaign_versions.select()).one()
        definition = dict(stored.definition)
        definition["workflow"]["nodes"][1]["config"].update(start=540, end=1020)
        conn.execute(campaign_versions.update().values(definition=definition))
    harness.launch(campaign_id, harness.csv("key\na\n"))
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    assert run.status == "completed"  # 00:10 is inside 00:09-00:17, as before
    with pytest.raises(DefinitionError, match="YAML reads an unquoted 9:00 as the number 540"):
        harness.create(window.replace("'00:09'", "9:00").replace("'00:17'", "17:00").replace("Zones", "Again"))
