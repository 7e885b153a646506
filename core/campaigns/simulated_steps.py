"""What the built-in step types with side effects would do in a simulation: they render what they would send or
set, as they do for real, and follow their success edge, calling no channel, action, updater or plugin.

They are looked up by the exact class: a plugin that replaces ``send_message`` with a class of its own answers for
itself through ``StepType.simulate`` (and cannot be simulated if it does not say how).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engine.steps.actions import CompiledMessage, Enforcement, SendEvent, SendMessage, UpdateCustomField
from ..errors import PermanentStepError
from ..step import StepContext, StepResult, StepType
from ..templating import render

DryRun = Callable[[StepContext], StepResult]


def simulate_step(step: StepType, ctx: StepContext) -> StepResult:
    """The node's simulated outcome; NotImplementedError when its step type cannot be simulated."""
    dry = BUILT_IN.get(type(step))
    return dry(ctx) if dry is not None else step.simulate(ctx)


def _send_message(ctx: StepContext) -> StepResult:
    msg: CompiledMessage = ctx.config
    env = ctx.runtime.jinja
    variables = ctx.template_vars()
    rendered = {part: render(template, variables) for part in ("to", "subject", "text", "html")
                if (template := msg.template(env, part)) is not None}
    to = rendered["to"].strip()
    if not to:  # as the real step: the run takes its failure edge
        raise PermanentStepError("no recipient: the 'to' address rendered empty")
    message = {"channel": msg.channel, "to": to, "subject": rendered["subject"].strip(), "text": rendered["text"],
               "html": rendered.get("html")}
    return StepResult.follow(channel=msg.channel, to=to, message=message)


def _update_custom_field(ctx: StepContext) -> StepResult:
    parsed, value_template, metadata = ctx.config
    variables = ctx.template_vars()
    value = render(value_template, variables)
    for template in metadata.values():
        render(template, variables)  # a metadata template that fails fails the real step too
    return StepResult.follow(field=parsed.field, value=value, updater=parsed.updater)


def _enforcement_action(ctx: StepContext) -> StepResult:
    parsed, params = ctx.config
    variables = ctx.template_vars()
    rendered: dict[str, Any] = {name: render(template, variables) for name, template in params.items()}
    return StepResult.follow(action=parsed.action, params=rendered)


def _send_event(ctx: StepContext) -> StepResult:
    parsed, templates = ctx.config
    variables = ctx.template_vars()
    return StepResult.follow(event=parsed.event, payload={k: render(t, variables) for k, t in templates.items()})


BUILT_IN: dict[type[StepType], DryRun] = {
    SendMessage: _send_message,
    UpdateCustomField: _update_custom_field,
    Enforcement: _enforcement_action,
    SendEvent: _send_event,
}
