"""Simulating a campaign (`campaign simulate`, the API, the console's Simulate): each target walks the workflow on a
simulated clock with nothing sent and nothing changed; the counts per node and edge, example paths and rendered
messages are kept apart from real runs, audited, and deletable. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_support import Cli, as_json, make_cli
from sqlalchemy import func, select

from campaignkit.core import StepContext, StepResult, StepType, hookimpl
from campaignkit.core.campaigns.queries import node_counts
from campaignkit.core.campaigns.simulate import MAX_STEPS, SimulationOptions
from campaignkit.core.campaigns.simulations import (
    delete_simulation,
    get_simulation,
    list_simulations,
    run_simulation,
)
from campaignkit.core.db import reading
from campaignkit.core.db.schema import metadata
from campaignkit.core.errors import NotFound
from campaignkit.core.testing import CampaignHarness, SmtpInbox

# Pros go straight to the delay; of the free, a cohort is nudged and the rest leave. The delay ends on a Friday
# evening in Paris, so the window holds the message until Monday 09:00 there; nobody opens it within two days.
JOURNEY = """
name: {name}
audience: {{source: csv, path: {audience}, key: id}}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: plan}}
    - id: plan
      type: branch
      config: {{condition: "target.plan == 'pro'"}}
      edges: {{"true": settle, "false": split}}
    - id: split
      type: random_cohort
      config: {{cohorts: {cohorts}}}
      edges: {edges}
    - {{id: settle, type: time_delay, config: {{duration: P4DT8H}}, next: office}}
    - id: office
      type: time_window
      config: {{days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00", timezone: Europe/Paris}}
      next: welcome
    - id: welcome
      type: send_message
      config:
        channel: {channel}
        to: "{{{{ target.email }}}}"
        subject: "Welcome, {{{{ target.name }}}}"
        text: "Hello {{{{ target.name }}}}, your plan is {{{{ target.plan }}}}."
        html: "<p>Hello <b>{{{{ target.name }}}}</b></p><script>alert('no')</script>"
      edges: {{next: opened, failure: bye}}
    - id: opened
      type: wait_for_event
      config: {{events: [opened], timeout: P2D}}
      edges: {{opened: bye, timeout: bye}}
    - {{id: bye, type: left_campaign}}
"""
SPLIT = "{nudge: 50, skip: 50}", "{nudge: settle, skip: bye}"
ONE_COHORT = "{nudge: 100}", "{nudge: settle}"  # the same for every run: the real engine must agree exactly
PEOPLE = 40  # every fourth a pro; t00, a pro, has no e-mail address


def people(harness: CampaignHarness, count: int = PEOPLE) -> Path:
    rows = ["id,email,name,plan"] + [
        f"t{i:02},{'' if i == 0 else f't{i}@example.org'},Person {i} & Co,{'pro' if i % 4 == 0 else 'free'}"
        for i in range(count)]
    return harness.csv("\n".join(rows) + "\n", "people.csv")


def journey(harness: CampaignHarness, name: str = "Onboarding", split: tuple[str, str] = SPLIT,
            channel: str = "smtp", audience: Path | None = None) -> str:
    cohorts, edges = split
    return harness.create(JOURNEY.format(name=name, audience=audience or people(harness), cohorts=cohorts,
                                         edges=edges, channel=channel))


@pytest.fixture
def ck_settings(database_url: str, ck_smtp: SmtpInbox, ck_web_url: str) -> dict[str, Any]:
    return {"database_url": database_url, "plugins": {"config": {"smtp": ck_smtp.channel_config()}},
            "web": {"base_url": ck_web_url}}


OWN_TABLES = ("simulations", "audit_history", "audit_chain")


def rows_outside_simulations(harness: CampaignHarness) -> dict[str, int]:
    """Rows of every table but the simulations' own and the audit trail's (each simulation adds one record)."""
    with reading(harness.runtime.engine) as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in metadata.sorted_tables if table.name not in OWN_TABLES}


def node(summary: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in summary["nodes"] if n["id"] == node_id)


def test_a_journey_is_walked_with_nothing_sent_and_no_row_written(harness: CampaignHarness, ck_smtp: SmtpInbox) -> None:
    campaign_id = journey(harness)
    before = rows_outside_simulations(harness)
    audit_before = len(harness.audit())
    kept = run_simulation(harness.runtime, campaign_id, harness.actor, SimulationOptions())
    s = kept["summary"]

    # Nothing went anywhere: no SMTP session at all, and no row but the simulation's own and its audit record.
    assert ck_smtp.sessions == 0 and ck_smtp.messages == []
    assert rows_outside_simulations(harness) == before
    assert before["runs"] == before["step_records"] == before["events"] == 0
    assert len(harness.audit()) == audit_before + 1
    assert [row["id"] for row in list_simulations(harness.runtime, campaign_id)] == [kept["id"]]

    pros, free = 10, 30
    nudged = node(s, "split")["left"]["nudge"]
    assert node(s, "split")["left"] == {"nudge": nudged, "skip": free - nudged} and 5 <= nudged <= 25
    assert node(s, "start") | {"left": node(s, "start")["left"]} == {
        "id": "start", "type": "entered_campaign", "entered": PEOPLE, "left": {"next": PEOPLE}, "ended": {}}
    assert node(s, "plan")["left"] == {"true": pros, "false": free}
    reached = pros + nudged
    for waiting_node in ("settle", "office"):
        assert (node(s, waiting_node)["entered"], node(s, waiting_node)["left"]) == (reached, {"next": reached})
    # t00 has no address: the send fails as it would for real and the run takes the failure edge.
    assert node(s, "welcome")["left"] == {"next": reached - 1, "failure": 1}
    assert node(s, "opened")["left"] == {"timeout": reached - 1}
    assert node(s, "bye") == {"id": "bye", "type": "left_campaign", "entered": PEOPLE, "left": {},
                              "ended": {"completed": PEOPLE}}
    edges = {(e["source"], e["label"]): e["count"] for e in s["edges"]}
    assert edges[("split", "skip")] == free - nudged and edges[("opened", "opened")] == 0
    assert s["outcomes"] == {"completed": PEOPLE} and s["effects"] == {"send_message": reached - 1}
    assert s["problems"] == [{"node": "welcome", "kind": "error", "count": 1, "target_key": "t00",
                              "message": "no recipient: the 'to' address rendered empty"}]
    assert s["not_simulatable"] == [] and s["targets"] == PEOPLE

    # Time jumped: the delay ends Friday 17:00 UTC (18:00 in Paris), the window opens Monday 09:00 Paris (08:00 UTC),
    # and the event's timeout two days later.
    pro_path = next(p for p in s["paths"] if [step["edge"] for step in p["steps"][:2]] == ["next", "true"]
                    and p["steps"][-2]["edge"] == "timeout")
    assert [(step["node"], step["edge"], step["at"][:16]) for step in pro_path["steps"]] == [
        ("start", "next", "2030-01-07T09:00"), ("plan", "true", "2030-01-07T09:00"),
        ("settle", "next", "2030-01-11T17:00"), ("office", "next", "2030-01-14T08:00"),
        ("welcome", "next", "2030-01-14T08:00"), ("opened", "timeout", "2030-01-16T08:00"),
        ("bye", None, "2030-01-16T08:00")]
    assert pro_path["count"] == pros - 1 and s["last_at"].startswith("2030-01-16T08:00")

    # The messages it would have sent, rendered for their targets (the HTML part autoescaped as for real).
    first = s["messages"][0]
    number = int(first["target_key"][1:])
    assert (first["node"], first["channel"], first["to"]) == ("welcome", "smtp", f"t{number}@example.org")
    plan = "pro" if number % 4 == 0 else "free"
    assert first["subject"] == f"Welcome, Person {number} & Co" and first["text"].endswith(f"plan is {plan}.")
    assert first["html"].startswith("<p>Hello <b>Person ") and "&amp; Co</b>" in first["html"]
    assert len(s["messages"]) == 3 and first["at"].startswith("2030-01-14T08:00")


def test_the_simulation_predicts_what_the_engine_does(harness: CampaignHarness, ck_smtp: SmtpInbox,
                                                      clock: Any) -> None:
    """With the one cohort everybody shares, the real runs go exactly where the simulation said they would."""
    audience = people(harness)
    campaign_id = journey(harness, split=ONE_COHORT, audience=audience)
    simulated = run_simulation(harness.runtime, campaign_id, harness.actor, SimulationOptions())["summary"]
    harness.launch(campaign_id)
    for _ in range(12):
        harness.run_to_idle()
        clock.advance(timedelta(days=1))
    real = node_counts(harness.runtime, campaign_id)
    assert {n["id"]: (n["entered"], n["left"]) for n in simulated["nodes"] if n["entered"]} == {
        node_id: (c.entered, c.left) for node_id, c in real.items() if c.entered}
    assert len(ck_smtp.messages) == simulated["effects"]["send_message"] == 9 + 30


def test_a_sample_and_no_fast_forward(harness: CampaignHarness) -> None:
    campaign_id = journey(harness)
    sampled = run_simulation(harness.runtime, campaign_id, harness.actor, SimulationOptions(sample=7))
    assert (sampled["targets"], sampled["sample"], sampled["summary"]["audience"]["targets"]) == (7, 7, PEOPLE)
    assert node(sampled["summary"], "start")["entered"] == 7

    # Without fast-forward each target stops at its first wait, which says until when.
    held = run_simulation(harness.runtime, campaign_id, harness.actor, SimulationOptions(fast_forward=False))
    s = held["summary"]
    waiting = node(s, "settle")["ended"]["waiting"]
    assert waiting == node(s, "settle")["entered"] and node(s, "office")["entered"] == 0
    assert s["outcomes"] == {"waiting": waiting, "completed": PEOPLE - waiting}
    stopped = next(p for p in s["paths"] if p["outcome"] == "waiting")
    assert stopped["until"].startswith("2030-01-11T17:00") and stopped["waiting_for"] == []
    assert s["messages"] == [] and s["effects"] == {}


DEADLINE = """
name: {name}
audience: {{source: csv, path: {audience}, key: id}}
schedule: {{end_after: P5D}}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: answer}}
    - id: answer
      type: wait_for_event
      config: {{events: {events}}}
      edges: {edges}
    - {{id: bye, type: left_campaign}}
"""


def test_waits_for_events_and_the_cycle_s_deadline(harness: CampaignHarness) -> None:
    audience = people(harness, 3)
    forever = harness.create(DEADLINE.format(name="Forever", audience=audience, events="[clicked]",
                                             edges="{clicked: bye}").replace("schedule: {end_after: P5D}\n", ""))
    s = run_simulation(harness.runtime, forever, harness.actor, SimulationOptions())["summary"]
    assert s["outcomes"] == {"waiting": 3} and s["paths"][0]["waiting_for"] == ["clicked"]
    assert node(s, "answer")["ended"] == {"waiting": 3}

    # A workflow that listens for the deadline gets it when the cycle ends; one that does not is ended then.
    listening = harness.create(DEADLINE.format(name="Listening", audience=audience, events="[approved, deadline]",
                                               edges="{approved: bye, deadline: bye}"))
    s = run_simulation(harness.runtime, listening, harness.actor, SimulationOptions())["summary"]
    assert node(s, "answer")["left"] == {"deadline": 3} and s["outcomes"] == {"completed": 3}
    assert s["last_at"].startswith("2030-01-12T09:00") and s["deadline_at"].startswith("2030-01-12T09:00")
    deaf = harness.create(DEADLINE.format(name="Deaf", audience=audience, events="[approved]",
                                          edges="{approved: bye}"))
    s = run_simulation(harness.runtime, deaf, harness.actor, SimulationOptions())["summary"]
    assert s["outcomes"] == {"terminated": 3} and node(s, "answer")["ended"] == {"terminated": 3}


class Vendor:
    """A plugin with two step types that talk to the outside: one says how to simulate itself, one does not."""

    __name__ = "simulation_vendor"

    def __init__(self) -> None:
        self.executed: list[str] = []
        self.simulated: list[tuple[int, bool]] = []
        vendor = self

        class Page(StepType):
            name = "page_on_call"
            side_effect = True

            def execute(self, ctx: StepContext) -> StepResult:
                vendor.executed.append(f"page {ctx.target_key}")
                return StepResult.follow()

            def simulate(self, ctx: StepContext) -> StepResult:
                vendor.simulated.append((ctx.run_id, ctx.simulated))
                return StepResult.follow(message={"channel": "pager", "to": "on-call", "subject": f"{ctx.target_key}",
                                                  "text": "would page", "html": None})

        class Ticket(StepType):
            name = "open_ticket"
            side_effect = True

            def execute(self, ctx: StepContext) -> StepResult:
                vendor.executed.append(f"ticket {ctx.target_key}")
                return StepResult.follow()

        self.classes = [Page, Ticket]

    @hookimpl
    def register_step_types(self) -> list[type[StepType]]:
        return self.classes


PLUGIN_FLOW = """
name: Escalation
audience: {{source: csv, path: {audience}, key: id}}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: page}}
    - {{id: page, type: page_on_call, next: ticket}}
    - {{id: ticket, type: open_ticket, next: bye}}
    - {{id: bye, type: left_campaign}}
"""


def test_plugin_steps_are_simulated_by_their_own_simulate_or_reported(make_runtime: Any, actor: Any,
                                                                      tmp_path: Path) -> None:
    vendor = Vendor()
    harness = CampaignHarness(make_runtime(extra_plugins=(vendor,)), actor, tmp_path)
    campaign_id = harness.create(PLUGIN_FLOW.format(audience=people(harness, 3)))
    s = run_simulation(harness.runtime, campaign_id, actor, SimulationOptions())["summary"]
    assert vendor.executed == []  # neither step's execute ran
    assert sorted(vendor.simulated) == [(-3, True), (-2, True), (-1, True)]  # no run id: negative, and told so
    assert node(s, "page")["left"] == {"next": 3} and [m["channel"] for m in s["messages"]] == ["pager"] * 3
    assert node(s, "ticket")["ended"] == {"not_simulated": 3} and node(s, "bye")["entered"] == 0
    assert s["not_simulatable"] == [{"node": "ticket", "type": "open_ticket"}]
    assert s["problems"] == [{"node": "ticket", "kind": "not_simulated", "count": 3, "target_key": "t00",
                              "message": "step type 'open_ticket' has side effects and offers no simulation"}]
    harness.close()


def test_a_step_type_written_before_simulate_existed_still_simulates_by_running(tmp_path: Path) -> None:
    class Tag(StepType):  # a plugin's pure step, as 0.2 wrote them: execute only
        name = "tag"

        def execute(self, ctx: StepContext) -> StepResult:
            return StepResult.follow(tag="x")

    assert Tag().simulate(None) == StepResult.follow(tag="x")  # type: ignore[arg-type]


def test_a_loop_only_an_event_could_leave_is_stopped_and_reported(harness: CampaignHarness) -> None:
    campaign_id = harness.create(f"""
name: Reminders
audience: {{source: csv, path: {people(harness, 2)}, key: id}}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: wait}}
    - id: wait
      type: wait_for_event
      config: {{events: [answered], timeout: P1D}}
      edges: {{answered: bye, timeout: remind}}
    - {{id: remind, type: record_outcome, config: {{context: {{reminded: "yes"}}}}, next: wait}}
    - {{id: bye, type: left_campaign}}
""")
    s = run_simulation(harness.runtime, campaign_id, harness.actor, SimulationOptions())["summary"]
    assert s["outcomes"] == {"looping": 2}
    assert s["problems"][0]["kind"] == "looping" and str(MAX_STEPS) in s["problems"][0]["message"]


def test_each_simulation_and_each_deletion_is_audited(harness: CampaignHarness) -> None:
    campaign_id = journey(harness)
    kept = run_simulation(harness.runtime, campaign_id, harness.actor, SimulationOptions(sample=5))
    (simulated,) = harness.audit("Campaign Simulated")
    assert (simulated.audit_type, simulated.object_id, simulated.object_name) == ("Operations", campaign_id,
                                                                                  "Onboarding")
    assert simulated.user_name == harness.actor.user_name
    assert f"simulation {kept['id']}: a random sample of 5 of {PEOPLE} target(s)" in simulated.details
    assert "fast-forward on" in simulated.details and "nothing was sent or changed" in simulated.details

    delete_simulation(harness.runtime, campaign_id, kept["id"], harness.actor)
    (deleted,) = harness.audit("Simulation Deleted")
    assert deleted.audit_type == "Operations" and f"simulation {kept['id']} of " in deleted.details
    assert list_simulations(harness.runtime, campaign_id) == []
    with pytest.raises(NotFound):
        get_simulation(harness.runtime, campaign_id, kept["id"])
    with pytest.raises(NotFound):
        delete_simulation(harness.runtime, campaign_id, kept["id"], harness.actor)
    assert len(harness.audit("Simulation Deleted")) == 1


# --- the CLI --------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Cli:
    return make_cli(monkeypatch, tmp_path, database_url)


def test_the_cli_simulates_lists_shows_and_deletes(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    rows = "id,email,name,plan\n" + "".join(f"t{i},t{i}@example.org,P{i},pro\n" for i in range(1, 5))
    (tmp_path / "people.csv").write_text(rows, encoding="utf-8")
    (tmp_path / "other.csv").write_text(rows.splitlines()[0] + "\nz9,z9@example.org,Zed,pro\n", encoding="utf-8")
    (tmp_path / "journey.yaml").write_text(JOURNEY.format(name="Onboarding", audience="people.csv",
                                                          cohorts=SPLIT[0], edges=SPLIT[1], channel="file"))
    cli("campaign", "create", "journey.yaml")

    shown = cli("campaign", "simulate", "Onboarding").stdout
    assert "all 4 target(s), fast-forward on" in shown and "nothing was sent or changed" in shown
    assert "Welcome, P1" in shown and "completed" in shown
    assert not (tmp_path / "var" / "outbox").exists()  # the file channel wrote nothing

    kept = as_json(cli("campaign", "simulate", "Onboarding", "--audience", "other.csv", "--no-fast-forward",
                       "--format", "json"))
    assert kept["summary"]["audience"]["targets"] == 1 and kept["summary"]["outcomes"] == {"waiting": 1}
    assert kept["summary"]["audience"]["file"] == str((tmp_path / "other.csv").resolve())
    listed = as_json(cli("campaign", "simulations", "Onboarding", "--format", "json"))
    assert [(s["id"], s["targets"], s["fast_forward"]) for s in listed] == [(kept["id"], 1, False),
                                                                          (kept["id"] - 1, 4, True)]
    again = as_json(cli("campaign", "simulation", "Onboarding", str(kept["id"]), "--format", "json"))
    assert again["summary"] == kept["summary"]
    assert "deleted simulation" in cli("campaign", "delete-simulation", "Onboarding", str(kept["id"])).stdout
    assert "has no simulation" in cli("campaign", "simulation", "Onboarding", str(kept["id"]), code=1).stderr
    assert "sample: between 1 and" in cli("campaign", "simulate", "Onboarding", "--sample", "2000000",
                                          code=1).stderr
    assert "no campaign" in cli("campaign", "simulate", "Nope", code=1).stderr
    assert "missing.csv" in cli("campaign", "simulate", "Onboarding", "--audience", "missing.csv", code=1).stderr


# --- the API and the console ----------------------------------------------------------------------------------------


def test_the_api_runs_lists_reads_and_deletes_by_role(ck_web: Any, harness: CampaignHarness,
                                                      ck_smtp: SmtpInbox) -> None:
    campaign_id = journey(harness)
    operator, auditor = ck_web.api("operator", "write"), ck_web.api("auditor", "read")
    assert auditor.post(f"/api/campaigns/{campaign_id}/simulate", json={}).status_code == 403
    answer = operator.post(f"/api/campaigns/{campaign_id}/simulate", json={"sample": 5}, timeout=30)
    assert answer.status_code == 200, answer.text
    kept = answer.json()
    assert (kept["targets"], kept["summary"]["targets"], kept["created_by"]) == (5, 5, "operator-tester")
    assert operator.post(f"/api/campaigns/{campaign_id}/simulate", json={"sample": 0}).status_code == 422
    assert operator.post("/api/campaigns/nope/simulate", json={}).status_code == 404

    listed = auditor.get(f"/api/campaigns/{campaign_id}/simulations").json()
    assert [s["id"] for s in listed] == [kept["id"]] and "summary" not in listed[0]
    assert auditor.get(f"/api/campaigns/{campaign_id}/simulations/{kept['id']}").json()["summary"] == kept["summary"]
    assert auditor.delete(f"/api/campaigns/{campaign_id}/simulations/{kept['id']}").status_code == 403
    assert operator.delete(f"/api/campaigns/{campaign_id}/simulations/{kept['id']}").status_code == 200
    assert auditor.get(f"/api/campaigns/{campaign_id}/simulations/{kept['id']}").status_code == 404
    assert ck_smtp.sessions == 0


def test_the_console_simulates_from_the_campaign_page_and_shows_the_result(ck_web: Any,
                                                                          harness: CampaignHarness) -> None:
    campaign_id = journey(harness)
    operator, auditor = ck_web.console("operator"), ck_web.console("auditor")
    assert 'id="simulate-form"' in operator.get(f"/campaigns/{campaign_id}").text
    assert 'id="simulate-form"' not in (page := auditor.get(f"/campaigns/{campaign_id}").text)
    assert 'id="simulations-link"' in page

    assert auditor.submit(f"/campaigns/{campaign_id}/simulate", fast_forward="on").status_code == 403
    assert operator.post(f"/campaigns/{campaign_id}/simulate", data={"fast_forward": "on"}).status_code == 403  # CSRF
    answer = operator.submit(f"/campaigns/{campaign_id}/simulate", fast_forward="on", sample="")
    assert answer.status_code == 303
    (kept,) = list_simulations(harness.runtime, campaign_id)
    assert answer.headers["location"] == f"/campaigns/{campaign_id}/simulations/{kept['id']}"

    result = auditor.get(answer.headers["location"])
    assert result.status_code == 200
    html = result.text
    assert "nothing was sent and nothing was changed" in html
    assert 'data-node="welcome"' in html and "entered" in html
    # The message's HTML is shown in a sandboxed frame, its markup escaped into srcdoc: it never runs in the console.
    frame = re.search(r'<iframe sandbox srcdoc="([^"]*)"', html)
    assert frame is not None and "&lt;script&gt;" in frame.group(1) and "<script>" not in frame.group(1)
    assert operator.submit(f"/campaigns/{campaign_id}/simulate", sample="abc").status_code == 400

    assert auditor.submit(f"/campaigns/{campaign_id}/simulations/{kept['id']}/delete").status_code == 403
    deleted = operator.submit(f"/campaigns/{campaign_id}/simulations/{kept['id']}/delete")
    assert deleted.status_code == 303 and list_simulations(harness.runtime, campaign_id) == []
    assert "is deleted" in operator.get(deleted.headers["location"]).text
    assert auditor.get(f"/campaigns/{campaign_id}/simulations/{kept['id']}").status_code == 404


def test_duplicate_keys_merge_as_at_a_launch_and_a_far_repeat_is_simulated_once(harness: CampaignHarness) -> None:
    rows = ["id,plan", "dup,pro", "dup,free"]  # merged, as a launch merges them: the later value wins
    rows += [f"t{i},pro" for i in range(2100)] + ["t5,free"]  # t5 again, more than a chunk of rows later
    campaign_id = harness.create(f"""
name: Keys
audience: {{source: csv, path: {harness.csv(chr(10).join(rows) + chr(10), "keys.csv")}, key: id}}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: plan}}
    - {{id: plan, type: branch, config: {{condition: "target.plan == 'pro'"}}, edges: {{"true": bye, "false": bye}}}}
    - {{id: bye, type: left_campaign}}
""")
    s = run_simulation(harness.runtime, campaign_id, harness.actor, SimulationOptions())["summary"]
    assert s["audience"] == {"rows": 2103, "targets": 2101, "duplicates": 2, "file": None}
    assert node(s, "plan")["left"] == {"true": 2100, "false": 1} and s["targets"] == 2101
