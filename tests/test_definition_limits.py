"""Definitions are read within limits from the settings, every number and duration is bounded so that what passes
validation also runs, audience sources are checked at create, and SQLite and PostgreSQL accept the same inputs.

The corpus of hostile files is in test_fuzz_corpus.py; these are the limits, the bounds and the edges that pass.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_support import Cli, as_json
from pydantic import BaseModel, ConfigDict

from campaignkit.core import AudienceSource, DefinitionError, Target, hookimpl
from campaignkit.core.definitions.loader import load_definition_text
from campaignkit.core.definitions.validation import validate_definition
from campaignkit.core.definitions.workflow import MAX_DURATION, MAX_SECONDS, RetryPolicy, did_you_mean
from campaignkit.core.errors import AudienceError
from campaignkit.core.settings import DefinitionSettings
from campaignkit.core.testing import CampaignHarness

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"




def problems(text: str, limits: DefinitionSettings | None = None, kinds: Any = None) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load_definition_text(text, "test.yaml", limits, kinds)
    return caught.value.problems


# --- reading within limits ------------------------------------------------------------------------------------------


def test_an_alias_bomb_is_stopped_by_the_node_limit_in_bounded_time() -> None:
    levels = ["name: Bomb", "workflow: {nodes: [{id: a, type: left_campaign}]}", "settings:", "  l0: &l0 [lol]"]
    levels += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 8) + "]" for i in range(1, 9)]  # 8 ** 8 values
    started = time.monotonic()
    (problem,) = problems("\n".join(levels) + "\n")
    assert time.monotonic() - started < 2
    assert problem.startswith("test.yaml:5:7: settings.l5[") and "more than 50000 values" in problem


def test_each_limit_is_a_setting() -> None:
    journey = (EXAMPLES / "journey.yaml").read_text()
    load_definition_text(journey, "journey.yaml")  # the defaults take every example
    long_value = journey + f"settings: {{long: {'y' * 300}}}\n"
    for key, value, text, expected in [("max_depth", 4, journey, "nested deeper than 4 levels"),
                                       ("max_nodes", 100, journey, "more than 100 values"),
                                       ("max_string_chars", 256, long_value, "a value longer than 256 characters"),
                                       ("max_total_chars", 1024, journey, "more than 1024 characters of text")]:
        (problem,) = problems(text, DefinitionSettings(**{key: value}))
        assert problem.startswith("test.yaml:") and expected in problem and f"(definitions.{key})" in problem
    (aliases,) = problems("name: A\nworkflow: {nodes: [{id: a, type: left_campaign}]}\nsettings: {a: &a 1, b: *a}\n",
                          DefinitionSettings(max_aliases=0))
    assert aliases == "test.yaml:3:24: more than 0 aliases (definitions.max_aliases)"
    (size,) = problems(journey, DefinitionSettings(max_file_bytes=1024))
    assert size == "test.yaml: the definition is larger than 1024 bytes (definitions.max_file_bytes)"


def test_a_file_over_the_size_limit_is_refused_unread(sqlite_cli: Cli, tmp_path: Path) -> None:
    sqlite_cli("init")
    big = tmp_path / "big.yaml"
    big.write_text("name: Big\n" + "# padding\n" * 30_000 + "workflow: {nodes: [{id: a, type: left_campaign}]}\n")
    err = sqlite_cli("campaign", "create", str(big), code=1).stderr
    assert err == f"error: {big}: the file is larger than 262144 bytes (definitions.max_file_bytes)\n"


def test_the_cli_reads_the_limits_from_the_settings(sqlite_cli: Cli) -> None:
    sqlite_cli("init")
    journey = str(EXAMPLES / "journey.yaml")
    err = sqlite_cli("campaign", "create", journey, code=1, env={"CAMPAIGNKIT_DEFINITIONS__MAX_DEPTH": "4"}).stderr
    assert err.startswith(f"error: {journey}:") and "(definitions.max_depth)" in err
    # A limit that would let deep nesting reach Python's recursion limit is a configuration error.
    err = sqlite_cli("campaign", "create", journey, code=2, env={"CAMPAIGNKIT_DEFINITIONS__MAX_DEPTH": "5000"}).stderr
    assert "definitions.max_depth" in err and len(err.splitlines()) == 1
    assert "created campaign" in sqlite_cli("campaign", "create", journey).stdout


def test_keys_are_text_as_json_keeps_them() -> None:
    loaded = load_definition_text(
        "name: K\nworkflow:\n  nodes:\n    - {id: a, type: entered_campaign, next: s}\n"
        "    - {id: s, type: random_cohort, config: {cohorts: {1: 1, 2: 3}}, edges: {1: e, 2: e}}\n"
        "    - {id: e, type: left_campaign}\n", "test.yaml")
    assert loaded.definition.workflow.nodes[1].config == {"cohorts": {"1": 1, "2": 3}}


# --- bounds: what passes validation runs ------------------------------------------------------------------------------


def test_the_longest_retry_backoff_is_a_duration_a_run_can_wait() -> None:
    policy = RetryPolicy(max_attempts=100, backoff_seconds=MAX_SECONDS, backoff_factor=10,
                         max_backoff_seconds=MAX_SECONDS)
    assert [policy.delay(attempt) for attempt in (1, 100, 10_000)] == [MAX_DURATION] * 3
    assert RetryPolicy(backoff_seconds=0, backoff_factor=10).delay(10_000) == timedelta(0)


def test_did_you_mean_names_the_closest_only_when_close() -> None:
    assert did_you_mean("acess_review", ["journey", "access_review"]) == "; did you mean 'access_review'?"
    assert did_you_mean("zzz", ["journey", "access_review"]) == ""


def test_a_misspelt_kind_or_step_type_names_its_key_the_known_names_and_the_closest(runtime: Any) -> None:
    # Only the kind: the missing workflow follows from it and would send the reader the wrong way.
    assert problems("name: R\nkind: acess_review\nsettings: {remind_every: P3D}\n", kinds=runtime.kinds) == [
        "test.yaml:2:1: kind: unknown campaign kind 'acess_review' (known: access_review, journey, phishing); "
        "did you mean 'access_review'?"]
    loaded = load_definition_text("name: T\nworkflow:\n  nodes:\n    - {id: a, type: entered_campaign, next: b}\n"
                                  "    - {id: b, type: left_campain}\n", "test.yaml")
    with pytest.raises(DefinitionError) as caught:
        validate_definition(loaded.definition, loaded.source, runtime)
    (problem,) = caught.value.problems
    assert problem.startswith("test.yaml:5:15: workflow.nodes[1].type (node 'b'): unknown step type 'left_campain' "
                              "(known: assign, ")
    assert problem.endswith("wait_for_event); did you mean 'left_campaign'?")


EDGE = """\
name: {name}
audience: {{source: csv, path: {path}, key: key}}
schedule: {{end_after: P3650D}}
workflow:
  nodes:
    - {{id: a, type: entered_campaign, next: delay}}
    - {{id: delay, type: time_delay, config: {{duration: P3650D}}, next: wait, timeout_seconds: 86400,
       retry: {{max_attempts: 100, backoff_seconds: 315360000, backoff_factor: 10, max_backoff_seconds: 315360000}}}}
    - {{id: wait, type: wait_for_event, config: {{events: [opened], timeout: P3650D}}, edges: {{opened: end,
       timeout: end}}}}
    - {{id: end, type: left_campaign}}
"""


def test_values_at_every_bound_are_stored_and_run_alike_on_both_databases(harness: CampaignHarness, clock: Any,
                                                                         ) -> None:
    """Ten-year waits and deadlines, the longest retry, a 200-character name and a 300-character key (not ASCII:
    PostgreSQL counts characters) are accepted and run on SQLite and PostgreSQL alike."""
    name, key = "Ü" * 200, "é" * 300
    campaign_id = harness.create(EDGE.format(name=name, path=harness.csv(f"key,x\n{key},1\n")))
    assert harness.launch(campaign_id) == 1
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    assert (run.target_key, run.status, run.current_node) == (key, "waiting", "delay")
    assert run.due_at == clock.now() + MAX_DURATION
    clock.advance(MAX_DURATION)
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    assert (run.status, run.current_node, run.due_at) == ("waiting", "wait", clock.now() + MAX_DURATION)
    clock.advance(MAX_DURATION)
    harness.run_to_idle()
    assert [(r.status, r.error) for r in harness.runs(campaign_id)] == [("completed", None)]
    assert harness.campaigns.get(campaign_id)["name"] == name


def test_the_examples_load_and_launch_on_both_databases(cli: Cli) -> None:
    cli("init")
    examples = sorted(EXAMPLES.glob("*.yaml"))
    assert [p.name for p in examples] == ["access_review.yaml", "journey.yaml", "phishing.yaml"]
    for example in examples:
        assert "created campaign" in cli("campaign", "create", str(example)).stdout
    for listed in as_json(cli("campaign", "list", "--format", "json")):
        assert "launched campaign" in cli("campaign", "launch", listed["id"]).stdout
    for name, csv in (("Welcome journey", "contacts.csv"), ("Quarterly access review", "access_review.csv"),
                      ("Q4 phishing simulation", "phishing.csv")):
        rows = len((EXAMPLES / csv).read_text().splitlines()) - 1  # one run per row: no key repeats
        assert len(as_json(cli("runs", name, "--format", "json"))) == rows


# --- audiences --------------------------------------------------------------------------------------------------------


class Roster:
    """A plugin audience source whose settings need a URL, and whose records hold what a CSV cannot."""

    __name__ = "roster_plugin"

    def __init__(self, records: list[dict[str, Any]]) -> None:
        class RosterConfig(BaseModel):
            model_config = ConfigDict(extra="forbid")
            url: str

        class RosterSource(AudienceSource):
            name = "roster"
            Config = RosterConfig

            def targets(self, spec: Mapping[str, Any], base_dir: Path) -> Iterator[Target]:
                for record in records:
                    yield Target(key=record["id"], attributes=record)

        self.source = RosterSource

    @hookimpl
    def register_audience_sources(self) -> list[type[AudienceSource]]:
        return [self.source]


ROSTER_FLOW = """\
name: Roster
audience: {source: roster}
workflow:
  nodes:
    - {id: a, type: entered_campaign, next: z}
    - {id: z, type: left_campaign}
"""


def test_the_audience_source_and_its_settings_are_checked_at_create(make_runtime: Any) -> None:
    def create_problems(runtime: Any, text: str) -> list[str]:
        with pytest.raises(DefinitionError) as caught:
            loaded = load_definition_text(text, "test.yaml")
            validate_definition(loaded.definition, loaded.source, runtime)
        return caught.value.problems

    unconfigured = make_runtime(extra_plugins=(Roster([]),))
    assert create_problems(unconfigured, ROSTER_FLOW) == [
        "test.yaml:2:12: audience.source: invalid configuration for audience source 'roster': "
        "plugins.config.roster.url: Field required"]
    assert create_problems(unconfigured, ROSTER_FLOW.replace("roster", "rooster")) == [
        "test.yaml:2:12: audience.source: no audience source named 'rooster' is registered (known: csv, roster); "
        "did you mean 'roster'?"]
    configured = make_runtime(extra_plugins=(Roster([]),), plugins={"config": {"roster": {"url": "https://r"}}})
    loaded = load_definition_text(ROSTER_FLOW, "test.yaml")
    validate_definition(loaded.definition, loaded.source, configured)


@pytest.mark.parametrize(("record", "problem"), [
    ({"id": "a", "score": float("inf")}, "target 'a': column 'score' holds a value JSON cannot store"),
    ({"id": "a", "note": "x\0y"}, "target 'a': column 'note' contains NUL (U+0000), which PostgreSQL cannot store"),
    ({"id": "k" * 301}, "the key is 301 characters long; at most 300"),
])
def test_a_plugin_source_record_neither_database_could_store_alike_is_refused(
        make_runtime: Any, actor: Any, tmp_path: Path, record: dict[str, Any], problem: str) -> None:
    runtime = make_runtime(extra_plugins=(Roster([{"id": "ok"}, record]),),
                           plugins={"config": {"roster": {"url": "https://r"}}})
    harness = CampaignHarness(runtime, actor, tmp_path)
    campaign_id = harness.create(ROSTER_FLOW)
    with pytest.raises(AudienceError, match=re.escape(problem)):
        harness.launch(campaign_id)
    assert harness.runs(campaign_id) == [] and harness.campaigns.get(campaign_id)["state"] == "draft"
    harness.close()
