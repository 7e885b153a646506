"""Checks a campaign definition against the registered step types; every problem names node and position."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jinja2
from pydantic import ValidationError

from ..errors import CampaignkitError, DefinitionError
from ..step import FAILURE
from .checking import checking
from .entry import entry_problems
from .loader import SourceMap, describe_path
from .schedule import cron_trigger
from .workflow import CampaignDefinition, Workflow, did_you_mean

if TYPE_CHECKING:
    from ..runtime import Runtime


def validate_definition(definition: CampaignDefinition, source: SourceMap, runtime: Runtime) -> None:
    """Raise DefinitionError listing every problem, or return when the definition can run."""
    problems: list[str] = []
    workflow = definition.workflow
    positions = {node.id: i for i, node in reversed(list(enumerate(workflow.nodes)))}

    def report(index: int | None, message: str, *subpath: str | int) -> None:
        path: tuple[str | int, ...] = ("workflow", "nodes", index, *subpath) if index is not None else (
            "workflow", *subpath)
        label = describe_path(path)
        if index is not None:
            label += f" (node {workflow.nodes[index].id!r})"
        problems.append(f"{source.where(path)}: {label}: {message}")

    kind_names = runtime.kind(definition.kind).template_names
    seen: set[str] = set()
    for i, node in enumerate(workflow.nodes):
        if node.id in seen:
            report(i, f"duplicate node id {node.id!r} (first at workflow.nodes[{positions[node.id]}])", "id")
        seen.add(node.id)

    start = workflow.start_node()
    if start not in positions:
        report(None, f"start node {start!r} does not exist", "start")
    for former, node_id in workflow.node_mappings.items():
        if former in positions:
            report(None, f"{former!r} is a node of this version: a mapping is for nodes it removed", "node_mappings",
                   former)
        elif node_id not in positions:
            report(None, f"maps {former!r} to unknown node {node_id!r}{did_you_mean(node_id, positions)}",
                   "node_mappings", former)

    for i, node in enumerate(workflow.nodes):
        if not runtime.registry.has("step type", node.type):
            names = runtime.registry.names("step type")
            report(i, f"unknown step type {node.type!r} (known: {', '.join(names)}){did_you_mean(node.type, names)}",
                   "type")
            continue
        step = runtime.registry.step_type(node.type)
        try:
            with checking():
                config = step.compile(node.config, runtime)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(str(part) if not isinstance(part, int) else part for part in err["loc"])
                report(i, f"{describe_path(loc)}: {err['msg']}", "config", *loc)
            continue
        except (CampaignkitError, jinja2.TemplateError, ValueError) as exc:
            report(i, str(exc), "config")
            continue
        edges = node.all_edges()
        for label in sorted(step.required_edges(config) - edges.keys()):
            report(i, f"step type {node.type!r} needs an edge labelled {label!r}", "edges")
        allowed = step.allowed_edges(config) | {FAILURE}
        for label in sorted(edges.keys() - allowed):
            report(i, f"step type {node.type!r} has no edge labelled {label!r} (allowed: "
                   f"{', '.join(sorted(allowed))})", "edges", label)
        for label, target in edges.items():
            if target not in positions:
                where: tuple[str, ...] = ("next",) if label == "next" and node.next else ("edges", label)
                report(i, f"edge {label!r} points to unknown node {target!r}", *where)
        for field, template in step.templates(config).items():
            problems.extend(_template_problems(runtime, template, source, i, node.id, field, kind_names))

    problems.extend(_schedule_problems(definition, source, runtime.settings.timezone))
    problems.extend(entry_problems(definition, source))
    problems.extend(_audience_problems(definition, source, runtime))
    if problems:
        raise DefinitionError(problems)
    problems.extend(_graph_problems(workflow, runtime, source))
    if problems:
        raise DefinitionError(problems)


def _schedule_problems(definition: CampaignDefinition, source: SourceMap, default_timezone: str) -> list[str]:
    schedule = definition.schedule
    if schedule is None or not schedule.cron:
        return []
    try:
        cron_trigger(schedule, default_timezone)
    except DefinitionError as exc:
        return [f"{source.where(('schedule', 'cron'))}: {problem}" for problem in exc.problems]
    return []


def _audience_problems(definition: CampaignDefinition, source: SourceMap, runtime: Runtime) -> list[str]:
    """The audience source exists and its settings are valid, as for a node's channel: found at create, not when
    the campaign is launched (or, scheduled, when nobody is watching)."""
    name = definition.audience.source if definition.audience else "csv"  # a launch without one reads a CSV
    try:
        runtime.registry.require("audience source", name)
    except CampaignkitError as exc:
        hint = "" if runtime.registry.has("audience source", name) else did_you_mean(
            name, runtime.registry.names("audience source"))
        return [f"{source.where(('audience', 'source'))}: audience.source: {exc}{hint}"]
    return []


def _template_problems(
    runtime: Runtime, template: str, source: SourceMap, index: int, node_id: str, field: str,
    kind_names: frozenset[str],
) -> list[str]:
    path: tuple[str | int, ...] = ("workflow", "nodes", index, "config", *field.split("."))
    where = f"{source.where(path)}: {describe_path(path)} (node {node_id!r})"
    try:
        unknown = runtime.undeclared_template_variables(template, kind_names)
    except jinja2.TemplateSyntaxError as exc:
        return [f"{where}: template syntax error on line {exc.lineno}: {exc.message}"]
    if unknown:
        return [f"{where}: template uses undefined variable(s): {', '.join(sorted(unknown))}"]
    return []


def _graph_problems(workflow: Workflow, runtime: Runtime, source: SourceMap) -> list[str]:
    nodes = workflow.node_map()
    index = {node.id: i for i, node in enumerate(workflow.nodes)}
    graph = {node.id: list(node.all_edges().values()) for node in workflow.nodes}
    problems = []

    reachable: set[str] = set()
    stack = [workflow.start_node()]
    while stack:
        current = stack.pop()
        if current not in reachable:
            reachable.add(current)
            stack.extend(graph[current])
    for node in workflow.nodes:
        if node.id not in reachable:
            path = ("workflow", "nodes", index[node.id])
            problems.append(f"{source.where(path)}: {describe_path(path)} (node {node.id!r}): "
                            f"unreachable from the start node {workflow.start_node()!r}")

    for component in _strongly_connected(graph):
        is_cycle = len(component) > 1 or component[0] in graph[component[0]]
        if is_cycle and not any(runtime.registry.step_type(nodes[n].type).waits for n in component):
            first = min(component, key=index.__getitem__)
            path = ("workflow", "nodes", index[first])
            members = " -> ".join(sorted(component, key=index.__getitem__))
            problems.append(f"{source.where(path)}: {describe_path(path)} (node {first!r}): "
                            f"cycle with no waiting step ({members}); a run would loop forever")
    return problems


def _strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so that long workflows cannot hit the recursion limit."""
    counter = 0
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    for root in graph:
        if root in order:
            continue
        work: list[tuple[str, Any]] = [(root, iter(graph[root]))]
        order[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in order:
                    order[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], order[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == order[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(component)
    return result
