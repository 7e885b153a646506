"""ab_split through the real engine: weights, paths, repeatable assignment, and definition errors."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from campaignkit.core import CampaignkitError, DefinitionError

TARGETS = 200
AUDIENCE = "key,email\n" + "".join(f"u{i},u{i}@example.org\n" for i in range(TARGETS))


def journey(split_config: str, edges: str = "{a: offer_a, b: offer_b}", name: str = "Offer test") -> str:
    return f"""
name: {name}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: split}}
    - {{id: split, type: ab_split, config: {split_config}, edges: {edges}}}
    - {{id: offer_a, type: left_campaign, config: {{reason: got offer a}}}}
    - {{id: offer_b, type: left_campaign, config: {{reason: got offer b}}}}
"""


def variants_by_key(ck_campaign: Any, campaign_id: str) -> dict[str, str]:
    return {run.target_key: run.context["variant_split"] for run in ck_campaign.runs(campaign_id)}


def test_weights_split_the_audience_and_each_run_follows_its_variant(ck_campaign: Any) -> None:
    runs = ck_campaign.run_campaign(journey("{variants: {a: 1, b: 3}, salt: spring-offer}"), AUDIENCE)

    assert len(runs) == TARGETS and {run.status for run in runs} == {"completed"}
    counts = Counter(run.context["variant_split"] for run in runs)
    assert set(counts) == {"a", "b"}
    # 1:3 means 50 of 200 expected in a; a binomial spread of about 6, so 36..64 is a loose but real bound.
    assert 36 <= counts["a"] <= 64, counts
    for run in runs:
        variant = run.context["variant_split"]
        steps = ck_campaign.steps(run.id)
        split = next(step for step in steps if step.node_id == "split")
        assert split.outcome == "ok" and split.edge == variant and split.detail["variant"] == variant
        assert [step.node_id for step in steps] == ["start", "split", f"offer_{variant}"]


def test_same_salt_puts_each_target_in_the_same_variant_in_another_campaign(ck_campaign: Any) -> None:
    first = ck_campaign.create(journey("{variants: {a: 1, b: 1}, salt: holdout-2030}", name="First"))
    # Another campaign, variants written in the other order: the assignment must not depend on either.
    second = ck_campaign.create(journey("{variants: {b: 1, a: 1}, salt: holdout-2030}", name="Second"))
    other_salt = ck_campaign.create(journey("{variants: {a: 1, b: 1}, salt: another}", name="Third"))
    for campaign_id in (first, second, other_salt):
        ck_campaign.launch(campaign_id, ck_campaign.csv(AUDIENCE))
    ck_campaign.run_to_idle()

    assigned = variants_by_key(ck_campaign, first)
    assert len(assigned) == TARGETS and set(assigned.values()) == {"a", "b"}
    assert variants_by_key(ck_campaign, second) == assigned
    # A different salt is a different, independent split: some targets must move.
    moved = sum(1 for key, variant in variants_by_key(ck_campaign, other_salt).items() if assigned[key] != variant)
    assert 50 <= moved <= 150


def test_without_salt_a_relaunch_repeats_the_split_but_another_campaign_does_not(ck_campaign: Any,
                                                                                   ck_clock: Any) -> None:
    campaign_id = ck_campaign.create(journey("{variants: {a: 1, b: 1}}"))
    ck_campaign.launch(campaign_id, ck_campaign.csv(AUDIENCE))
    ck_campaign.run_to_idle()
    first_launch = variants_by_key(ck_campaign, campaign_id)
    assert ck_campaign.campaigns.get(campaign_id)["state"] == "completed"

    ck_clock.advance(timedelta(days=1))  # a launch is keyed by its time: relaunch a day later
    ck_campaign.launch(campaign_id, ck_campaign.csv(AUDIENCE))  # a re-run: new runs, same targets
    ck_campaign.run_to_idle()
    runs = ck_campaign.runs(campaign_id)
    assert len(runs) == 2 * TARGETS
    for run in runs:
        assert run.context["variant_split"] == first_launch[run.target_key]

    other = ck_campaign.run_campaign(journey("{variants: {a: 1, b: 1}}", name="Unrelated"), AUDIENCE)
    moved = sum(1 for run in other if run.context["variant_split"] != first_launch[run.target_key])
    assert 50 <= moved <= 150


@pytest.mark.parametrize(("split_config", "edges", "expected"), [
    ("{variants: {a: 1, b: 3}}", "{a: offer_a}", "needs an edge labelled 'b'"),
    ("{variants: {a: 1, b: 0}}", "{a: offer_a, b: offer_b}", "variants.b: Input should be greater than 0"),
    ("{variants: {a: 1, b: '3'}}", "{a: offer_a, b: offer_b}", "variants.b: Input should be a valid integer"),
    ("{variants: {a: 1}}", "{a: offer_a}", "variants: Dictionary should have at least 2 items"),
    ("{variants: {a: 1, failure: 1}}", "{a: offer_a, failure: offer_b}", "'failure' is the edge taken"),
    ("{variants: {a: 1, b: 1}, seed: x}", "{a: offer_a, b: offer_b}", "seed: Extra inputs are not permitted"),
])
def test_bad_split_fails_campaign_creation_naming_the_node(ck_campaign: Any, split_config: str, edges: str,
                                                           expected: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        ck_campaign.create(journey(split_config, edges))
    message = str(caught.value)
    assert "(node 'split')" in message and expected in message, message
    with pytest.raises(CampaignkitError, match="no campaign"):  # creation wrote nothing
        ck_campaign.campaigns.resolve("Offer test")
