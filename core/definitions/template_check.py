"""Every template a campaign will render, tried with a row of its audience before any run depends on it.

Static checks (syntax, unknown top-level names) cannot see that ``target.user`` does not exist when the audience
calls that column ``login``; rendering once with a real row can. This runs at ``campaign create`` (with the
definition's own audience, when it can be read) and at every launch (with the first row being launched), and names
the template's file and line. Values that only earlier steps set (``context``) are taken as they come: only what the
campaign's data and the engine provide is held to account.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import chain
from typing import TYPE_CHECKING, Any

import jinja2

from ..errors import CampaignkitError, DefinitionError
from ..interfaces import Target
from ..step import StepContext
from ..templating import template_location
from .loader import SourceMap, describe_path
from .workflow import CampaignDefinition

if TYPE_CHECKING:
    from ..runtime import Runtime


class _Unknown(str):
    """A value an earlier step would have set: empty text that also answers any attribute, item or call."""

    __slots__ = ()

    def __getattr__(self, name: str) -> _Unknown:
        if name.startswith("_"):
            raise AttributeError(name)
        return UNKNOWN

    def __getitem__(self, key: Any) -> _Unknown:  # type: ignore[override]
        return UNKNOWN

    def __call__(self, *args: Any, **kwargs: Any) -> _Unknown:
        return UNKNOWN


UNKNOWN = _Unknown()


class _Anything(dict[str, Any]):
    """``context`` in a sample render: whatever earlier steps would have set is there, as UNKNOWN."""

    def __missing__(self, key: str) -> Any:
        return UNKNOWN


def sample_variables(runtime: Runtime, definition: CampaignDefinition, row: Mapping[str, Any],
                     node_id: str) -> dict[str, Any]:
    """What a step's templates would see for a run of ``row`` (StepContext.template_vars, the kind's included)."""
    facets = {"assignee": "approver@campaignkit.invalid", "response": None, "response_at": None, "result": None,
              "notify": None, "assignment": 1}
    kind = runtime.kind(definition.kind)
    settings = kind.settings(definition.settings)
    ctx = StepContext(run_id=0, campaign_id="", target_key="", target=dict(row),
                      context=_Anything(assignee=facets["assignee"]), node_id=node_id, visit=1, attempt=1,
                      now=runtime.clock.now(), config=None, idempotency_key="sample", runtime=runtime,
                      facets=facets, kind_variables=lambda ctx: kind.template_variables(settings, ctx))
    return ctx.template_vars()


def template_problems(runtime: Runtime, definition: CampaignDefinition, source: SourceMap, sample: Target,
                      sample_origin: str) -> list[str]:
    """Each template of the definition rendered with ``sample``; one line per failure, naming where it stands."""
    env = runtime.jinja
    row = f"with the audience row {sample_origin}"
    problems = []
    for index, node in enumerate(definition.workflow.nodes):
        step = runtime.registry.step_type(node.type)
        try:
            config = step.compile(node.config, runtime)
        except (CampaignkitError, jinja2.TemplateError, ValueError):
            continue  # validate_definition reports these, with their positions
        variables = sample_variables(runtime, definition, sample.attributes, node.id)
        files: Mapping[str, str] = getattr(config, "files", {})
        for field, text in step.templates(config).items():
            template = env.get_template(config.parts[field]) if field in files else env.from_string(text)
            problem = _render_problem(template, variables)
            if problem is None:
                continue
            path: tuple[str | int, ...] = ("workflow", "nodes", index, "config", *field.split("."))
            where = (f"{source.where(path)}: {describe_path(path)} (node {node.id!r})" if field not in files
                     else f"{source.filename}: node {node.id!r}, {field}")
            problems.append(f"{where}: {problem} {row}")
    kind = runtime.kind(definition.kind)
    for extra in kind.extra_templates(kind.settings(definition.settings), sample.attributes, runtime.clock.now()):
        name = extra.name
        try:
            template = env.get_template(name)
        except jinja2.TemplateNotFound:
            if not extra.required:
                continue
            problems.append(f"{source.filename}: template {name!r} not found (looked in: "
                            f"{', '.join(env.loader.searchpath)})")  # type: ignore[union-attr]
            continue
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"{source.filename}: {exc.filename}, line {exc.lineno}: {exc.message}")
            continue
        problem = _render_problem(template, extra.variables)
        if problem is not None:
            problems.append(f"{source.filename}: {problem} {row}")
    return problems


def _render_problem(template: jinja2.Template, variables: Mapping[str, Any]) -> str | None:
    try:
        template.render(variables)
    except jinja2.TemplateError as exc:
        return f"template error{template_location(template, exc)}: {exc}"
    except (TypeError, ValueError, ArithmeticError):
        return None  # may come from the sample's stand-ins for context values: the run itself will tell
    return None


def check_templates(runtime: Runtime, definition: CampaignDefinition, source: SourceMap, sample: Target,
                    sample_origin: str) -> None:
    problems = template_problems(runtime, definition, source, sample, sample_origin)
    if problems:
        raise DefinitionError(problems)


def checked_first(runtime: Runtime, definition: CampaignDefinition, targets: Iterator[Target],
                  origin: str | None) -> Iterator[Target]:
    """``targets``, after the templates rendered with the first of them (a launch refuses before writing a run)."""
    first = next(targets, None)
    if first is None:
        return targets
    where = f"{origin}:{first.line}" if origin and first.line is not None else repr(first.key)
    check_templates(runtime, definition, SourceMap(origin or definition.name), first, where)
    return chain([first], targets)
