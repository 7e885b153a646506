"""Sandboxed Jinja2 environments for messages, conditions and pages; admins override templates by path."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import TemplateStepError
from .step import TEMPLATE_VARIABLES


def bundled_template_dir() -> Path:
    return Path(str(files("campaignkit.templates")))


def make_environment(
    template_dirs: Iterable[Path],
    prepare: Callable[[jinja2.Environment], None] | None = None,
) -> ImmutableSandboxedEnvironment:
    """Admin folders first, then the bundled templates: a file at the same path overrides ours."""
    search_path = [str(p) for p in template_dirs] + [str(bundled_template_dir())]
    env = ImmutableSandboxedEnvironment(
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
    except jinja2.TemplateError as exc:
        raise TemplateStepError(f"template error{template_location(template, exc)}: {exc}") from None
    except (ArithmeticError, ValueError, TypeError) as exc:  # a filter or operator given this run's data
        raise TemplateStepError(f"template error{template_location(template, exc)}: {type(exc).__name__}: {exc}"
                                ) from None


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
