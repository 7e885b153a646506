"""Entry rules and entries: who may enter a journey again (launches skip the others and say why), targets entering a
running journey through the API, the CLI and a plugin, and one run per target when entries and launches race, on
SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import Cli, as_json
from servers import serving
from sqlalchemy import select

from campaignkit.core import StepContext, StepResult, StepType, enter_target, hookimpl
from campaignkit.core.campaigns import Campaigns
from campaignkit.core.campaigns import entries as entries_module
from campaignkit.core.campaigns.entries import InvalidEntry
from campaignkit.core.clock import FakeClock
from campaignkit.core.db.schema import launches
from campaignkit.core.errors import AudienceError, DefinitionError, InvalidState, NotFound
from campaignkit.core.testing import CampaignHarness as Harness
from campaignkit.core.web.app import create_app

JOURNEY = """
name: {name}
{entry}
audience: {{key: email{path}}}
{schedule}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: plan}}
    - {{id: plan, type: branch, config: {{condition: "target.plan == 'quick'"}},
       edges: {{'true': done, 'false': wait}}}}
    - {{id: wait, type: wait_for_event, config: {{events: [clicked]}}, next: done}}
    - {{id: done, type: left_campaign}}
"""


def journey(entry: str = "", *, name: str = "Onboarding", path: Path | None = None, schedule: str = "") -> str:
    """Quick targets go straight through; the others stay in the journey until they click."""
    return JOURNEY.format(name=name, entry=f"entry: {entry}" if entry else "",
                          path=f", path: {path}" if path else "", schedule=f"schedule: {schedule}" if schedule else "")


def people(harness: Harness, *rows: str, name: str = "people.csv") -> Path:
    return harness.csv("email,plan\n" + "".join(f"{row}\n" for row in rows), name)


def live(harness: Harness, campaign_id: str) -> dict[str, int]:
    """Target key -> how many runs it has in the journey now."""
    found: dict[str, int] = {}
    for run in harness.runs(campaign_id):
        if run.status in ("pending", "active", "waiting"):
            found[run.target_key] = found.get(run.target_key, 0) + 1
    return found


def started_details(harness: Harness) -> list[str]:
    return [r.details for r in harness.audit("Workflow Started")]


# --- the rules in a definition --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "problem"), [
    ("{again: sometimes}", r"test\.yaml:3:9: entry\.again: Value error, 'sometimes' is not an entry rule: "
                           r"every_launch, after_leaving, never, or \{after: P30D\}"),
    ("{again: afterleaving}", r"did you mean 'after_leaving'\?"),
    ("{again: {after: soon}}", r"entry\.again: Value error, after: Input should be a valid timedelta"),
    ("{again: {after: PT0S}}", r"entry\.again: Value error, after: must be at least one second"),
    ("{again: never, trigger: api}", r"entry\.trigger: Input should be 'audience' or 'events'"),
    ("{agian: never}", r"entry\.agian: Extra inputs are not permitted"),
])
def test_create_refuses_an_entry_rule_it_cannot_read_naming_where(harness: Harness, entry: str, problem: str) -> None:
    with pytest.raises(DefinitionError, match=problem):
        harness.create(journey(entry))


def test_a_journey_triggered_by_events_reads_no_audience_and_has_no_cycles(harness: Harness) -> None:
    with pytest.raises(DefinitionError) as refused:
        harness.create(journey("{trigger: events}", path=Path("people.csv"), schedule="{cron: '0 9 * * *'}"))
    text = "\n".join(refused.value.problems)
    assert "test.yaml:4:1: audience: entry.trigger is events, so a launch reads no audience" in text
    assert "schedule.cron: entry.trigger is events, so there are no cycles to repeat" in text


# --- launches --------------------------------------------------------------------------------------------------------


def daily(harness: Harness, clock: FakeClock, entry: str) -> tuple[str, Path, Any]:
    """A campaign launched every day at 09:00 UTC from people.csv; returns its id, its file and the first cycle."""
    clock.set(datetime(2030, 1, 7, 8, 0, tzinfo=UTC))
    audience = people(harness, "a@x.org,quick")
    campaign_id = harness.create(journey(entry, path=audience, schedule="{cron: '0 9 * * *', timezone: UTC}"))
    first = harness.campaigns.launch(campaign_id, harness.actor)
    assert first.status == "scheduled"
    return campaign_id, audience, first


def cycle(harness: Harness, clock: FakeClock, at: datetime) -> Any:
    clock.set(at)
    (outcome,) = harness.campaigns.launch_due(harness.actor)
    harness.run_to_idle()
    return outcome


@pytest.mark.parametrize("held", [True, False], ids=["keys held", "keys looked up"])
def test_after_leaving_a_cycle_skips_who_is_still_in_and_says_why(harness: Harness, clock: FakeClock, held: bool,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    if not held:  # as with more runs in the journey than a launch holds the keys of
        monkeypatch.setattr(entries_module, "MAX_LIVE_SET", 0)
    campaign_id, _, first = daily(harness, clock, "{again: after_leaving}")
    people(harness, "a@x.org,quick", "b@x.org,slow", "c@x.org,slow")
    assert cycle(harness, clock, first.cycle_at).target_count == 3
    assert live(harness, campaign_id) == {"b@x.org": 1, "c@x.org": 1}  # a left at once, b and c wait
    people(harness, "a@x.org,quick", "b@x.org,slow", "c@x.org,slow", "d@x.org,quick", "d@x.org,quick")
    second = cycle(harness, clock, first.cycle_at + timedelta(days=1, seconds=1))
    assert (second.status, second.target_count, second.skipped) == ("launched", 2, {"in_journey": 2})
    assert live(harness, campaign_id) == {"b@x.org": 1, "c@x.org": 1}  # one run each, not two
    by_key = sorted((r.launch_id, r.target_key) for r in harness.runs(campaign_id))
    assert [key for launch, key in by_key if launch == second.launch_id] == ["a@x.org", "d@x.org"]
    assert started_details(harness)[-1] == (
        f"launch {second.launch_id}: 2 run(s); 2 target(s) skipped (entry.again: after_leaving): "
        "2 still in the journey")
    (_, imported) = harness.audit("File Import")
    assert "5 row(s), 2 target(s)" in imported.details


def test_never_lets_each_target_in_once_and_a_cycle_of_nobody_new_does_not_hang(harness: Harness,
                                                                                clock: FakeClock) -> None:
    campaign_id, _, first = daily(harness, clock, "{again: never}")
    people(harness, "a@x.org,quick", "b@x.org,quick")
    assert cycle(harness, clock, first.cycle_at).target_count == 2
    people(harness, "a@x.org,quick", "b@x.org,quick", "c@x.org,quick")
    second = cycle(harness, clock, first.cycle_at + timedelta(days=1))
    assert (second.target_count, second.skipped) == (1, {"entered_before": 2})
    third = cycle(harness, clock, first.cycle_at + timedelta(days=2))
    # Nobody new: the cycle launches no run, and the campaign waits for the next cycle instead of staying in progress.
    assert (third.status, third.target_count, third.skipped) == ("launched", 0, {"entered_before": 3})
    assert harness.campaigns.get(campaign_id)["state"] == "scheduled"
    assert started_details(harness)[-1].endswith("3 target(s) skipped (entry.again: never): 3 entered before")
    assert sorted(r.target_key for r in harness.runs(campaign_id)) == ["a@x.org", "b@x.org", "c@x.org"]


def test_after_a_period_a_relaunch_waits_for_it_then_lets_them_in(harness: Harness, clock: FakeClock) -> None:
    campaign_id = harness.create(journey("{again: {after: P30D}}"))
    audience = people(harness, "a@x.org,quick", "b@x.org,quick")
    assert harness.launch(campaign_id, audience) == 2
    harness.run_to_idle()
    assert harness.campaigns.get(campaign_id)["state"] == "completed"
    clock.advance(timedelta(days=10))
    again = harness.campaigns.launch(campaign_id, harness.actor, audience=audience)
    assert (again.target_count, again.skipped) == (0, {"too_soon": 2})
    assert again.summary == "2 target(s) skipped (entry.again: after P30D): 2 entered less than P30D ago"
    assert harness.campaigns.get(campaign_id)["state"] == "completed"  # settled again, and audited
    assert harness.audit("Workflow Completed")[-1].details == (
        "every run finished (the launch started none: the entry rules skipped every target)")
    clock.advance(timedelta(days=20))
    assert harness.launch(campaign_id, audience) == 2


@pytest.mark.parametrize("held", [True, False], ids=["keys held", "keys looked up"])
def test_without_rules_every_cycle_starts_a_run_for_everyone_but_who_entered_from_outside(
        harness: Harness, clock: FakeClock, held: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not held:
        monkeypatch.setattr(entries_module, "MAX_LIVE_SET", 0)
    campaign_id, _, first = daily(harness, clock, "")
    people(harness, "b@x.org,slow", "c@x.org,slow")
    assert cycle(harness, clock, first.cycle_at).target_count == 2
    assert enter_target(harness.runtime, campaign_id, "e@x.org", {"plan": "slow"}, actor=harness.actor).started
    people(harness, "b@x.org,slow", "c@x.org,slow", "e@x.org,slow")
    second = cycle(harness, clock, first.cycle_at + timedelta(days=1))
    # As before entry rules: each cycle its own runs; but e is in through its entry, which the cycle does not double.
    assert (second.target_count, second.skipped) == (2, {"in_journey": 1})
    assert live(harness, campaign_id) == {"b@x.org": 2, "c@x.org": 2, "e@x.org": 1}


# --- entries ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def served(harness: Harness) -> Iterator[tuple[str, Harness]]:
    with serving(create_app(harness.runtime)) as url:
        yield url, harness


def test_an_operator_enters_targets_through_the_api_and_hears_why_not(served: tuple[str, Harness]) -> None:
    url, harness = served
    campaign_id = harness.create(journey("{again: after_leaving}"))
    harness.launch(campaign_id, people(harness, "a@x.org,slow"))
    headers = {"Authorization": f"Bearer {harness.api_token('operator', 'write', user='ops@example.org')}"}

    def enter(key: str, **attributes: Any) -> httpx.Response:
        return httpx.post(f"{url}/api/campaigns/{campaign_id}/entries", headers=headers,
                          json={"key": key, "attributes": attributes})

    started = enter("z@x.org", plan="slow", first_name="Zoe")
    assert started.status_code == 201
    answer = started.json()
    assert answer["started"] is True and answer["reason"] is None and answer["target_key"] == "z@x.org"
    harness.run_to_idle()
    run = next(r for r in harness.runs(campaign_id) if r.id == answer["run_id"])
    # The key fills its audience column, as in a row of the audience; the run goes through the workflow.
    assert run.target == {"plan": "slow", "first_name": "Zoe", "email": "z@x.org"} and run.status == "waiting"
    (entries_launch,) = [row for row in launch_rows(harness, campaign_id) if row.status == "entries"]
    assert run.launch_id == answer["launch_id"] == entries_launch.id and entries_launch.target_count == 1

    again = enter("z@x.org", plan="slow")
    assert again.status_code == 200
    assert again.json() == {"started": False, "campaign_id": campaign_id, "target_key": "z@x.org",
                            "run_id": run.id, "reason": "in_journey", "launch_id": None, "may_enter_at": None,
                            "message": f"target 'z@x.org' is still in the journey (run {run.id})"}
    launched = enter("a@x.org", plan="quick")  # in through the launch
    assert launched.json()["reason"] == "in_journey"

    entry_audit = harness.audit("Workflow Started")[-1]
    assert entry_audit.user_name == "ops@example.org" and entry_audit.object_id == campaign_id
    assert entry_audit.details == (f"entry via api: run {run.id} started (launch {entries_launch.id}); "
                                   "attributes: email, first_name, plan")
    assert "Zoe" not in entry_audit.details  # values may be personal data: names only

    assert enter("bad\nkey").status_code == 422
    too_many = httpx.post(f"{url}/api/campaigns/{campaign_id}/entries", headers=headers, json={"key": "k", "x": 1})
    assert too_many.status_code == 422
    assert httpx.post(f"{url}/api/campaigns/nope/entries", headers=headers, json={"key": "k"}).status_code == 404
    auditor = {"Authorization": f"Bearer {harness.api_token('auditor', 'read')}"}
    refused = httpx.post(f"{url}/api/campaigns/{campaign_id}/entries", headers=auditor, json={"key": "k"})
    assert refused.status_code == 403 and len(harness.runs(campaign_id)) == 2


def launch_rows(harness: Harness, campaign_id: str) -> list[Any]:
    with harness.runtime.engine.connect() as conn:
        return list(conn.execute(select(launches).where(launches.c.campaign_id == campaign_id)
                                 .order_by(launches.c.id)))


@pytest.mark.parametrize(("entry", "after_leaving"), [
    ("{again: after_leaving}", "started"),
    ("{again: never}", "entered_before"),
    ("{again: {after: P30D}}", "too_soon"),
    ("", "started"),
])
def test_each_rule_decides_an_entry_after_the_target_left(harness: Harness, clock: FakeClock, entry: str,
                                                         after_leaving: str) -> None:
    campaign_id = harness.create(journey(entry))
    harness.launch(campaign_id, people(harness, "a@x.org,slow"))
    first = enter_target(harness.runtime, campaign_id, "q@x.org", {"plan": "slow"}, actor=harness.actor)
    harness.run_to_idle()
    assert enter_target(harness.runtime, campaign_id, "q@x.org", {"plan": "slow"}).reason == "in_journey"
    run_id = first.run_id
    assert run_id is not None
    from campaignkit.core.engine.events import send_event
    send_event(harness.runtime, run_id, "clicked")
    harness.run_to_idle()  # q has left
    clock.advance(timedelta(days=1))
    second = enter_target(harness.runtime, campaign_id, "q@x.org", {"plan": "slow"})
    assert (second.reason or "started") == after_leaving
    if second.started:  # a second entries launch holds the re-entry: the first already has q's run
        assert second.launch_id != first.launch_id and second.run_id != run_id
    elif after_leaving == "too_soon":
        assert second.may_enter_at == clock.now() - timedelta(days=1) + timedelta(days=30)
        assert second.message.endswith(f"it may enter again from {second.may_enter_at:%Y-%m-%d %H:%M} UTC")
        assert second.run_id == run_id
        clock.advance(timedelta(days=29))
        assert enter_target(harness.runtime, campaign_id, "q@x.org", {"plan": "slow"}).started


def test_a_campaign_takes_entries_only_while_it_runs(harness: Harness) -> None:
    campaign_id = harness.create(journey("{again: after_leaving}"))
    with pytest.raises(InvalidState, match="is a draft: launch it first"):
        enter_target(harness.runtime, campaign_id, "q@x.org")
    harness.launch(campaign_id, people(harness, "a@x.org,quick"))
    harness.run_to_idle()
    assert harness.campaigns.get(campaign_id)["state"] == "completed"
    reopened = enter_target(harness.runtime, campaign_id, "q@x.org", {"plan": "slow"}, actor=harness.actor)
    assert reopened.started and harness.campaigns.get(campaign_id)["state"] == "in_progress"
    assert started_details(harness)[-1].endswith("; the campaign was completed and is in progress again")
    harness.campaigns.pause(campaign_id, harness.actor)
    with pytest.raises(InvalidState, match="is paused; it takes no entries; resume it first"):
        enter_target(harness.runtime, campaign_id, "r@x.org")
    harness.campaigns.resume(campaign_id, harness.actor)
    harness.campaigns.terminate(campaign_id, harness.actor)
    with pytest.raises(InvalidState, match="is terminated; it takes no entries"):
        enter_target(harness.runtime, campaign_id, "r@x.org")
    with pytest.raises(NotFound):
        enter_target(harness.runtime, "no-such-campaign", "r@x.org")
    with pytest.raises(InvalidEntry, match="contains NUL"):
        enter_target(harness.runtime, campaign_id, "r@x.org", {"plan": "a\0b"})


def test_a_journey_triggered_by_events_opens_at_launch_and_starts_runs_only_from_entries(harness: Harness) -> None:
    campaign_id = harness.create(journey("{again: after_leaving, trigger: events}"))
    with pytest.raises(AudienceError, match=r"entry\.trigger is events: this campaign reads no audience"):
        harness.campaigns.launch(campaign_id, harness.actor, audience=people(harness, "a@x.org,quick"))
    opened = harness.campaigns.launch(campaign_id, harness.actor)
    assert (opened.status, opened.target_count) == ("launched", 0)
    assert harness.campaigns.get(campaign_id)["state"] == "in_progress"  # open for entries, not completed
    for key in ("a@x.org", "b@x.org"):
        assert enter_target(harness.runtime, campaign_id, key, {"plan": "quick"}).started
    harness.run_to_idle()
    assert [r.status for r in harness.runs(campaign_id)] == ["completed", "completed"]
    # Idle, it completes as any campaign does; the next entry opens it again.
    assert harness.campaigns.get(campaign_id)["state"] == "completed"
    assert enter_target(harness.runtime, campaign_id, "a@x.org", {"plan": "slow"}).started
    assert harness.campaigns.get(campaign_id)["state"] == "in_progress"


def test_campaign_enter_on_the_command_line(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    (tmp_path / "people.csv").write_text("email,plan\na@x.org,slow\n")
    (tmp_path / "journey.yaml").write_text(journey("{again: after_leaving}", path=Path("people.csv")))
    cli("campaign", "create", "journey.yaml")
    cli("campaign", "launch", "Onboarding")
    entered = cli("campaign", "enter", "Onboarding", "--target", "z@x.org", "--attr", "plan=slow",
                  "--attr", "first_name=Zoe Ada")
    assert "target 'z@x.org' entered: run 2" in entered.stdout
    again = as_json(cli("campaign", "enter", "Onboarding", "--target", "z@x.org", "--format", "json"))
    assert (again["started"], again["reason"], again["run_id"]) == (False, "in_journey", 2)
    said = cli("campaign", "enter", "Onboarding", "--target", "a@x.org").stdout
    assert "no run started: target 'a@x.org' is still in the journey (run 1)" in " ".join(said.split())
    bad = cli("campaign", "enter", "Onboarding", "--target", "y@x.org", "--attr", "plan", code=1)
    assert "--attr 'plan': write NAME=VALUE" in bad.stderr
    runs = as_json(cli("runs", "Onboarding", "--format", "json"))
    assert [(r["target_key"], r["status"]) for r in runs][-1] == ("z@x.org", "pending")


class FollowUp(StepType):
    """enter_follow_up: enters the run's target into another journey (a plugin's own step)."""

    name = "enter_follow_up"
    side_effect = True

    def execute(self, ctx: StepContext) -> StepResult:
        follow_up = Campaigns(ctx.runtime).resolve("Follow-up")
        outcome = enter_target(ctx.runtime, follow_up, ctx.target_key, ctx.target, source="plugin:follow-up",
                               code=self)
        return StepResult.follow(started=outcome.started, reason=outcome.reason)


class FollowUpPlugin:
    __name__ = "follow_up"

    @hookimpl
    def register_step_types(self) -> list[type[StepType]]:
        return [FollowUp]


def test_a_plugin_enters_targets_with_the_same_rules_and_audit(make_runtime: Any, actor: Any, tmp_path: Path,
                                                               clock: FakeClock) -> None:
    harness = Harness(make_runtime(extra_plugins=(FollowUpPlugin(),)), actor, tmp_path)
    follow_up = harness.create(journey("{again: never, trigger: events}", name="Follow-up"))
    harness.campaigns.launch(follow_up, harness.actor)
    first = harness.create("""
name: Welcome
audience: {key: email}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: hand_over}
    - {id: hand_over, type: enter_follow_up, next: done}
    - {id: done, type: left_campaign}
""")
    harness.launch(first, people(harness, "a@x.org,quick", "b@x.org,slow"))
    harness.run_to_idle()
    assert sorted((r.target_key, r.status) for r in harness.runs(follow_up)) == [
        ("a@x.org", "completed"), ("b@x.org", "waiting")]
    records = [r for r in harness.audit("Workflow Started") if r.object_id == follow_up and "entry" in r.details]
    assert len(records) == 2 and all("entry via plugin:follow-up" in r.details for r in records)
    assert {r.class_name for r in records} == {f"{__name__}.FollowUp"}
    assert all(r.user_name == harness.runtime.instance_id for r in records)  # a system task, not a person
    clock.advance(timedelta(days=1))
    harness.launch(first, people(harness, "a@x.org,quick"))  # again: Follow-up says never
    harness.run_to_idle()
    (second,) = [r for r in harness.runs(first) if r.launch_id != harness.runs(first)[0].launch_id]
    (hand_over,) = [s for s in harness.steps(second.id) if s.node_id == "hand_over"]
    assert hand_over.detail == {"started": False, "reason": "entered_before"}


# --- racing ----------------------------------------------------------------------------------------------------------


def test_one_run_when_the_same_target_enters_many_times_at_once(harness: Harness, make_runtime: Any) -> None:
    campaign_id = harness.create(journey())  # no rules: entries are still one run per target at a time
    harness.launch(campaign_id, people(harness, "a@x.org,slow"))
    callers = [make_runtime() for _ in range(6)]  # as many processes, each its own connections
    barrier = threading.Barrier(len(callers))
    outcomes: list[Any] = []

    def enter(runtime: Any) -> None:
        barrier.wait()
        outcomes.append(enter_target(runtime, campaign_id, "z@x.org", {"plan": "slow"}, source="api"))

    threads = [threading.Thread(target=enter, args=(runtime,)) for runtime in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 6
    (winner,) = [o for o in outcomes if o.started]
    assert {(o.reason, o.run_id) for o in outcomes if not o.started} == {("in_journey", winner.run_id)}
    assert live(harness, campaign_id) == {"a@x.org": 1, "z@x.org": 1}
    assert len([r for r in harness.audit("Workflow Started") if "entry via api" in r.details]) == 1


@pytest.mark.parametrize("entry", ["{again: after_leaving}", ""])
def test_an_entry_during_a_launch_waits_for_it_and_finds_the_launch_s_run(harness: Harness, make_runtime: Any,
                                                                          entry: str) -> None:
    campaign_id = harness.create(journey(entry))
    rows = [f"t{n}@x.org,slow" for n in range(3000)] + ["racer@x.org,slow"]
    audience = people(harness, *rows)
    other = make_runtime()
    halfway = threading.Event()
    entered: list[Any] = []

    def racer() -> None:
        halfway.wait(60)
        entered.append(enter_target(other, campaign_id, "racer@x.org", {"plan": "slow"}))

    thread = threading.Thread(target=racer)
    thread.start()
    # The progress callback runs inside the launch's transaction, after its first 2 000 runs are written: the
    # entry starts while the launch holds them, uncommitted.
    result = harness.campaigns.launch(campaign_id, harness.actor, audience=audience,
                                      progress=lambda count: halfway.set() if count >= 2000 else None)
    thread.join(60)
    assert result.target_count == 3001 and len(entered) == 1
    assert (entered[0].started, entered[0].reason) == (False, "in_journey")
    assert live(harness, campaign_id)["racer@x.org"] == 1


def test_a_cycle_after_an_entry_skips_the_target_while_it_is_in(harness: Harness, clock: FakeClock) -> None:
    campaign_id, _, first = daily(harness, clock, "{again: after_leaving}")
    assert cycle(harness, clock, first.cycle_at).target_count == 1
    assert enter_target(harness.runtime, campaign_id, "e@x.org", {"plan": "slow"}).started
    people(harness, "a@x.org,quick", "e@x.org,slow")
    second = cycle(harness, clock, first.cycle_at + timedelta(days=1))
    assert (second.target_count, second.skipped) == (1, {"in_journey": 1})
    assert live(harness, campaign_id) == {"e@x.org": 1}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_rules_read_earlier_runs_through_indexes(harness: Harness) -> None:
    """What a launch and an entry read of a campaign's earlier runs, however many: index searches, never a scan of
    runs. SQLite's plans, which follow the indexes; PostgreSQL's follow its statistics, and a table this small is
    rightly read whole."""
    from campaignkit.core.campaigns.entries import _HISTORY, _LATEST_ENTRIES
    from campaignkit.core.db.schema import runs

    campaign_id = harness.create(journey())
    harness.launch(campaign_id, people(harness, *(f"t{n}@x.org,slow" for n in range(3000))))
    keys = [f"t{n}@x.org" for n in range(0, 3000, 60)]  # a chunk is a small part of what the campaign holds
    chunk = select(runs.c.target_key, runs.c.id, runs.c.status, runs.c.created_at, runs.c.launch_id).where(
        runs.c.campaign_id == campaign_id, runs.c.target_key.in_(keys), runs.c.launch_id != 0)
    live = select(runs.c.target_key).where(runs.c.campaign_id == campaign_id,
                                           runs.c.status.in_(["pending", "active", "waiting"]))
    history = _HISTORY.params(campaign_id=campaign_id, key="t7@x.org")
    latest = _LATEST_ENTRIES.params(campaign_id=campaign_id, key="t7@x.org")
    with harness.runtime.engine.connect() as conn:
        def plan(statement: Any) -> str:
            sql = str(statement.compile(conn, compile_kwargs={"literal_binds": True}))
            return " | ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))

        for statement in (chunk, history):
            found = plan(statement)
            assert "USING INDEX ix_runs_campaign_id_target_key " in found, found
        assert "USING INDEX ix_runs_campaign_id_status " in plan(live)
        found = plan(latest)  # the launches it reads are few: a campaign's entries rows
        assert "SCAN" not in found and "SEARCH runs USING INDEX sqlite_autoindex_runs_1 (launch_id=? AND " \
                                       "target_key=?)" in found, found
