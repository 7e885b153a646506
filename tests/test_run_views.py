"""The read views plugins use instead of campaignkit's tables: campaigns by reference, runs with their facets,
settings and pending events, streamed a page at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from campaignkit.core import NotFound, campaign_runs, enter_target, find_campaign, latest_cycle, run_view, send_event
from campaignkit.core.campaigns import views
from campaignkit.core.definitions.loader import load_definition_text

DEFINITION = """
name: Fire drill
settings: {{floor: {floor}}}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: wait}}
    - {{id: wait, type: wait_for_event, config: {{events: [ticked]}}, edges: {{ticked: note}}}}
    - {{id: note, type: record_outcome, config: {{response: Ticked, response_at: event, result: Success}}, next: end}}
    - {{id: end, type: left_campaign}}
"""


def test_a_campaign_is_found_by_name_prefix_or_id_and_of_its_kind(harness: Any) -> None:
    campaign_id = harness.create(DEFINITION.format(floor=3))
    for reference in ("Fire drill", campaign_id, campaign_id[:8]):
        found = find_campaign(harness.runtime, reference)
        assert (found.id, found.name, found.kind, found.state, found.settings) == (
            campaign_id, "Fire drill", "journey", "draft", {"floor": 3})
    with pytest.raises(NotFound, match="no access_review campaign 'Fire drill'"):
        find_campaign(harness.runtime, "Fire drill", kind="access_review")
    with pytest.raises(NotFound, match="no campaign 'Evacuation'"):
        find_campaign(harness.runtime, "Evacuation")


def test_runs_carry_facets_settings_and_the_events_not_yet_taken(harness: Any) -> None:
    campaign_id = harness.create(DEFINITION.format(floor=3))
    assert latest_cycle(harness.runtime, campaign_id) is None
    harness.launch(campaign_id, harness.csv("key,email\nbob,bob@example.org\nada,ada@example.org\n"))
    harness.run_to_idle()
    ada, bob = campaign_runs(harness.runtime, campaign_id)  # by key
    assert bob.key == "bob"
    assert (ada.key, ada.target, ada.status, ada.node, ada.finished) == (
        "ada", {"key": "ada", "email": "ada@example.org"}, "waiting", "wait", False)
    assert (ada.settings, ada.pending_events, ada.cycle) == ({"floor": 3}, frozenset(), latest_cycle(
        harness.runtime, campaign_id))

    send_event(harness.runtime, ada.id, "ticked", {})
    send_event(harness.runtime, ada.id, "opened", {})
    recorded = run_view(harness.runtime, ada.id)
    assert recorded is not None and recorded.pending_events == {"ticked", "opened"}  # recorded, not applied yet
    harness.run_to_idle()
    ada = run_view(harness.runtime, ada.id)
    assert ada is not None
    assert (ada.status, ada.response, ada.result, ada.finished) == ("completed", "Ticked", "Success", True)
    assert ada.response_at is not None and ada.response_at.tzinfo is not None
    assert ada.pending_events == {"opened"}  # the run never waited for it
    assert run_view(harness.runtime, ada.id, kind="access_review") is None
    assert run_view(harness.runtime, 10**9) is None


def test_the_latest_cycle_is_the_latest_launch_not_the_targets_entered_after_it(harness: Any) -> None:
    campaign_id = harness.create(DEFINITION.format(floor=3))
    harness.launch(campaign_id, harness.csv("key,email\nbob,bob@example.org\n"))
    assert enter_target(harness.runtime, campaign_id, "ann", {"email": "ann@example.org"}, actor=harness.actor).started
    cycles = {run.key: run.cycle for run in campaign_runs(harness.runtime, campaign_id)}
    assert cycles["ann"] > cycles["bob"]  # an entry goes into a launch of its own, made after the cycle
    assert latest_cycle(harness.runtime, campaign_id) == cycles["bob"]


def test_runs_stream_page_by_page_cycle_by_cycle_each_with_its_version(
        harness: Any, clock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "PAGE", 2)
    campaign_id = harness.create(DEFINITION.format(floor=3))
    keys = [f"t{n:02}" for n in range(5)]
    harness.launch(campaign_id, harness.csv("key\n" + "\n".join(reversed(keys)) + "\n"))
    first = latest_cycle(harness.runtime, campaign_id)
    harness.run_to_idle()
    for run in campaign_runs(harness.runtime, campaign_id):  # the first cycle ends: everyone ticks
        send_event(harness.runtime, run.id, "ticked")
    harness.run_to_idle()
    loaded = load_definition_text(DEFINITION.format(floor=4), "test.yaml", kinds=harness.runtime.kinds)
    harness.campaigns.update(campaign_id, loaded, harness.actor)
    clock.advance(timedelta(days=1))
    harness.launch(campaign_id, harness.csv("key\nt01\nt00\n"))
    second = latest_cycle(harness.runtime, campaign_id)
    assert second != first

    every = [(run.cycle, run.key, run.settings["floor"]) for run in campaign_runs(harness.runtime, campaign_id)]
    assert every == [(first, key, 3) for key in keys] + [(second, "t00", 4), (second, "t01", 4)]
    assert [run.key for run in campaign_runs(harness.runtime, campaign_id, cycle=second)] == ["t00", "t01"]
    assert find_campaign(harness.runtime, campaign_id).settings == {"floor": 4}
