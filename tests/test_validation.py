"""Definition errors name the file, line, column and node, and nothing invalid is stored."""

from __future__ import annotations

from typing import Any

import pytest

from campaignkit.core import DefinitionError
from campaignkit.core.definitions.loader import load_definition_text
from campaignkit.core.definitions.validation import validate_definition

HEAD = "name: Checks\nworkflow:\n  nodes:\n"


def problems(runtime: Any, text: str) -> list[str]:
    with pytest.raises(DefinitionError) as excinfo:
        loaded = load_definition_text(text, "test.yaml")
        validate_definition(loaded.definition, loaded.source, runtime)
    return excinfo.value.problems


def test_unknown_step_type(runtime: Any) -> None:
    (problem,) = problems(runtime, HEAD + "    - {id: a, type: entered_campaign, next: b}\n"
                                          "    - {id: b, type: teleport}\n")
    assert problem.startswith("test.yaml:5:15: workflow.nodes[1].type (node 'b'): unknown step type 'teleport'")


def test_duplicate_and_dangling_ids(runtime: Any) -> None:
    found = problems(runtime, HEAD + "    - {id: a, type: entered_campaign, next: b}\n"
                                     "    - {id: b, type: left_campaign}\n"
                                     "    - {id: b, type: left_campaign}\n")
    assert "test.yaml:6:8: workflow.nodes[2].id (node 'b'): duplicate node id 'b' (first at workflow.nodes[1])" in found
    (dangling,) = problems(runtime, HEAD + "    - {id: a, type: entered_campaign, next: nowhere}\n")
    assert dangling.startswith("test.yaml:4:39: workflow.nodes[0].next (node 'a'): edge 'next' points to unknown "
                               "node 'nowhere'")


def test_unreachable_node(runtime: Any) -> None:
    (problem,) = problems(runtime, HEAD + "    - {id: a, type: entered_campaign, next: end}\n"
                                          "    - {id: orphan, type: left_campaign}\n"
                                          "    - {id: end, type: left_campaign}\n")
    assert problem.startswith("test.yaml:5:7: workflow.nodes[1] (node 'orphan'): unreachable")


def test_branch_without_its_false_edge(runtime: Any) -> None:
    (problem,) = problems(runtime, HEAD + "    - {id: a, type: entered_campaign, next: check}\n"
                                          "    - id: check\n"
                                          "      type: branch\n"
                                          "      config: {condition: target.vip}\n"
                                          "      edges: {'true': end}\n"
                                          "    - {id: end, type: left_campaign}\n")
    assert problem.startswith("test.yaml:8:7: workflow.nodes[1].edges (node 'check'): step type 'branch' needs "
                              "an edge labelled 'false'")


def test_cycle_without_a_waiting_step_is_rejected_but_with_one_accepted(runtime: Any) -> None:
    loop = HEAD + ("    - {id: a, type: entered_campaign, next: b}\n"
                   "    - {id: b, type: branch, config: {condition: 'true'}, edges: {'true': c, 'false': end}}\n"
                   "    - {id: c, type: %s, next: b}\n"
                   "    - {id: end, type: left_campaign}\n")
    (problem,) = problems(runtime, loop % "send_event, config: {event: ping}")
    assert "test.yaml:5:7" in problem and "cycle with no waiting step (b -> c)" in problem
    loaded = load_definition_text(loop % "time_delay, config: {duration: P1D}", "test.yaml")
    validate_definition(loaded.definition, loaded.source, runtime)


def test_template_with_an_undefined_variable(runtime: Any) -> None:
    (problem,) = problems(runtime, HEAD + "    - {id: a, type: entered_campaign, next: m}\n"
                                          "    - id: m\n"
                                          "      type: send_message\n"
                                          "      config: {channel: log, subject: 'Hi {{ recipient.name }}', text: x}\n"
                                          "      next: end\n"
                                          "    - {id: end, type: left_campaign}\n")
    assert problem.startswith("test.yaml:7:30: workflow.nodes[1].config.subject (node 'm'): template uses "
                              "undefined variable(s): recipient")


def test_unknown_channel_and_bad_config(runtime: Any) -> None:
    found = problems(runtime, HEAD + "    - {id: a, type: entered_campaign, next: m}\n"
                                     "    - {id: m, type: send_message, config: {channel: pigeon, subject: s, text: t},"
                                     " next: w}\n"
                                     "    - {id: w, type: time_delay, config: {duration: soon}}\n")
    assert any(p.startswith("test.yaml:5:35: workflow.nodes[1].config (node 'm'): no channel named 'pigeon'")
               for p in found)
    assert any(p.startswith("test.yaml:6:42: workflow.nodes[2].config.duration (node 'w')") for p in found)


def test_a_node_naming_a_component_whose_settings_are_missing_fails_at_creation(make_runtime: Any) -> None:
    from pydantic import BaseModel

    from campaignkit.core import Channel, Delivery, Message, hookimpl

    class Pager(Channel):
        name = "pager"

        class Config(BaseModel):
            api_url: str

        def send(self, message: Message) -> Delivery:
            return Delivery()

    class Plugin:
        __name__ = "pager_plugin"

        @hookimpl
        def register_channels(self) -> list[type[Channel]]:
            return [Pager]

    flow = HEAD + ("    - {id: a, type: entered_campaign, next: m}\n"
                   "    - {id: m, type: send_message, config: {channel: pager, subject: s, text: t}, next: z}\n"
                   "    - {id: z, type: left_campaign}\n")
    (problem,) = problems(make_runtime(extra_plugins=(Plugin(),)), flow)
    # Not at the first run that reaches the node, where it could only show as retries.
    assert problem.startswith("test.yaml:5:35: workflow.nodes[1].config (node 'm'): invalid configuration for "
                              "channel 'pager': plugins.config.pager.api_url: Field required")
    configured = make_runtime(extra_plugins=(Plugin(),), plugins={"config": {"pager": {"api_url": "https://p"}}})
    loaded = load_definition_text(flow, "test.yaml")
    validate_definition(loaded.definition, loaded.source, configured)


def test_syntax_and_shape_errors(runtime: Any) -> None:
    (syntax,) = problems(runtime, "name: x\nworkflow:\n  nodes: [\n")
    assert syntax.startswith("test.yaml:4:1:")
    (missing,) = problems(runtime, HEAD + "    - {id: a}\n")
    assert missing == "test.yaml:4:7: workflow.nodes[0].type (node 'a'): Field required"


def test_invalid_definition_is_not_stored(harness: Any) -> None:
    with pytest.raises(DefinitionError):
        harness.create(HEAD + "    - {id: a, type: teleport}\n")
    from campaignkit.core.campaigns.queries import list_campaigns

    assert list_campaigns(harness.runtime) == []
