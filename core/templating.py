"""Sandboxed Jinja2 environments for messages, conditions and pages; admins override templates by path."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.environment import TemplateExpression
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import TemplateStepError

# What rendering a run's data can raise that is the template author's to fix: Jinja's errors, and a filter or
# operator given this run's data.
RENDER_ERRORS = (jinja2.TemplateError, ArithmeticError, ValueError, TypeError)
# Names a template may use; validation rejects any other top-level variable.
TEMPLATE_VARIABLES = frozenset({"target", "context", "run", "now", "campaign", "event"})
# (A campaign kind adds its own, e.g. access reviews' ``review`` and ``links``: CampaignKind.template_names.)


def bundled_template_dir() -> Path:
    return Path(str(files("campaignkit.templates")))


_DICT_ATTRIBUTES = frozenset(dir(dict))  # every name getattr() finds on a plain dict


class CampaignSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, reading ``target.email`` from a run's data (plain dicts) without an exception per lookup.

    Jinja tries an attribute first and a key after catching AttributeError, which was most of a lookup's cost. A
    plain dict has no attribute outside dir(dict), so for any other name the key is what Jinja would return; the
    dict's own attributes (``items``...) and every other object go through the sandbox's checks as before."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if obj.__class__ is dict and attribute not in _DICT_ATTRIBUTES and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def make_environment(
    template_dirs: Iterable[Path],
    prepare: Callable[[jinja2.Environment], None] | None = None,
) -> CampaignSandbox:
    """Admin folders first, then the bundled templates: a file at the same path overrides ours."""
    search_path = [str(p) for p in template_dirs] + [str(bundled_template_dir())]
    env = CampaignSandbox(
        loader=jinja2.FileSystemLoader(search_path),
        undefined=jinja2.StrictUndefined,
        # Text parts and inline strings are not HTML; HTML files (and inline html parts, see send_message) are.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=False,
                                            default=False),
        keep_trailing_newline=True,
    )
    if prepare is not None:
        prepare(env)
    return env


def undeclared_variables(env: jinja2.Environment, source: str) -> set[str]:
    """Top-level names a template uses that the engine does not provide."""
    ast = env.parse(source)
    return set(meta.find_undeclared_variables(ast)) - TEMPLATE_VARIABLES - set(env.globals)


def expression_variables(env: jinja2.Environment, expression: str) -> set[str]:
    return undeclared_variables(env, "{{ " + expression + " }}")


def render(template: jinja2.Template, variables: Mapping[str, Any]) -> str:
    """Render for a run; a template that fails on the run's data is the author's to fix: TemplateStepError, naming
    the template's file and line, which fails the run instead of passing for a delivery failure."""
    try:
        return template.render(variables)
    except RENDER_ERRORS as exc:
        raise _step_error(template, exc) from None


class Scope:
    """One set of variables that several templates render from (a step's message parts, its payload, a branch's
    condition).

    Jinja's ``render`` merges the environment's globals with the variables into a new dictionary for every
    template, which was most of the cost of rendering a short part. Here they are merged once per environment
    and each template renders from that dictionary as it is (Jinja's shared context), as ``render`` would."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = variables
        self._merged: dict[int, dict[str, Any]] = {}  # by the environment's globals

    def render(self, template: jinja2.Template) -> str:
        if template.globals.maps[0]:  # type: ignore[attr-defined]  # a template given globals of its own
            return render(template, self.variables)
        env = template.environment
        context = self._context(template)
        try:
            try:
                text: str = env.concat(template.root_render_func(context))  # type: ignore[attr-defined]
            except Exception:
                env.handle_exception()  # as Template.render: the traceback names template lines
                raise
        except RENDER_ERRORS as exc:
            raise _step_error(template, exc) from None
        _idle.keep(template, context)
        return text

    def evaluate(self, expression: TemplateExpression) -> Any:
        """``expression`` (Environment.compile_expression's) evaluated from these variables, as calling it with
        them would: a TemplateError is the caller's to name."""
        template = expression._template  # the expression as a template that sets "result"
        if template.globals.maps[0]:  # type: ignore[attr-defined]
            return expression(**self.variables)
        context = self._context(template)
        for _ in template.root_render_func(context):  # type: ignore[attr-defined]
            pass
        value = context.vars["result"]
        _idle.keep(template, context)
        return None if expression._undefined_to_none and isinstance(value, jinja2.Undefined) else value

    def _context(self, template: jinja2.Template) -> jinja2.runtime.Context:
        """Template.new_context(merged, shared=True), without merging or iterating the globals again; for a template
        without blocks, a context an earlier render on this thread left idle (_IdleContexts)."""
        env = template.environment
        shared = env.globals
        merged = self._merged.get(id(shared))
        if merged is None:
            merged = self._merged[id(shared)] = {**shared, **self.variables}
        context = _idle.take(template)
        if context is None:
            return env.context_class(env, merged, template.name, template.blocks, globals=shared)
        context.parent = merged
        return context


class _IdleContexts(threading.local):
    """The contexts no render on this thread is using, by environment and template name (templates without blocks
    only): a context costs more to make than a short part to render, and a worker renders a few per step.

    A render takes one out and gives it back only when it succeeded, so a render within a render gets a context of
    its own, and a failed one (which can leave its autoescape changed) is dropped. Given back, it is cleared of what
    the render set ({% set %}, macros); a successful render leaves its evaluation state as it found it."""

    LIMIT = 256  # environments made on the fly (an inline HTML part's overlay) must not pile up

    def __init__(self) -> None:
        self.contexts: dict[tuple[int, str | None], jinja2.runtime.Context] = {}

    def take(self, template: jinja2.Template) -> jinja2.runtime.Context | None:
        if template.blocks:
            return None
        return self.contexts.pop((id(template.environment), template.name), None)

    def keep(self, template: jinja2.Template, context: jinja2.runtime.Context) -> None:
        if template.blocks:
            return
        if len(self.contexts) >= self.LIMIT:
            self.contexts.clear()
        context.vars.clear()
        context.exported_vars.clear()
        self.contexts[id(template.environment), template.name] = context


_idle = _IdleContexts()


def _step_error(template: jinja2.Template, exc: Exception) -> TemplateStepError:
    if isinstance(exc, jinja2.TemplateError):
        return TemplateStepError(f"template error{template_location(template, exc)}: {exc}")
    return TemplateStepError(f"template error{template_location(template, exc)}: {type(exc).__name__}: {exc}")


def template_location(template: jinja2.Template, exc: BaseException) -> str:
    """" in FILE, line N" (or " on line N" for an inline template) for an error raised while rendering."""
    filename = template.filename or "<template>"
    line = getattr(exc, "lineno", None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno  # Jinja maps the frames of compiled templates back to the template's lines
    if filename == "<template>":
        return f" on line {line}" if line else ""
    return f" in {filename}, line {line}" if line else f" in {filename}"
