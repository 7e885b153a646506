"""Built-in step types with side effects: messages, custom fields, enforcement, events to plugins.

Each hands its idempotency key to the plugin it calls, and runs on the worker's thread pool with a timeout unless the
plugin declares it never blocks (``Component.blocking``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import jinja2
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...errors import ConfigurationError, PermanentStepError
from ...interfaces import EnforcementRequest, FieldUpdate, Message
from ...step import StepContext, StepResult, StepType

if TYPE_CHECKING:
    from ...runtime import Runtime


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _compile_all(runtime: Runtime, sources: dict[str, str]) -> dict[str, jinja2.Template]:
    return {name: runtime.jinja.from_string(source) for name, source in sources.items()}


def _render(template: jinja2.Template, ctx: StepContext) -> str:
    # The same data renders the same way on every attempt: a failure is the author's to fix (TemplateStepError).
    return ctx.render(template)


@dataclass(frozen=True)
class CompiledMessage:
    """A message's parts: inline ones compiled once; parts from template files named by path and loaded at each
    send through the environment's cache, so a template fixed on disk is used by the next attempt or retry."""

    channel: str
    parts: dict[str, jinja2.Template | str]  # to, subject, text, html (optional): a template, or a file's name
    sources: dict[str, str]
    files: dict[str, str]  # part -> file the part was read from, for error messages

    def template(self, env: jinja2.Environment, part: str) -> jinja2.Template | None:
        found = self.parts.get(part)
        return env.get_template(found) if isinstance(found, str) else found


class SendMessage(StepType):
    """send_message: renders a message (inline or from templates/<template>/) and sends it through a channel."""

    name = "send_message"
    side_effect = True
    description = "Sends a message through a delivery channel."

    class Config(_Config):
        channel: str = Field(min_length=1)
        to: str = "{{ target.email }}"
        template: str | None = Field(default=None, description="Folder with subject.txt, body.txt, body.html")
        subject: str | None = None
        text: str | None = None
        html: str | None = None

        @model_validator(mode="after")
        def _one_source(self) -> SendMessage.Config:
            if self.template is None and (self.subject is None or self.text is None):
                raise ValueError("give either 'template' or both 'subject' and 'text'")
            if self.template is not None and (self.subject or self.text or self.html):
                raise ValueError("give either 'template' or inline 'subject'/'text'/'html', not both")
            return self

    def compile(self, config: Any, runtime: Runtime) -> CompiledMessage:
        parsed = self.Config.model_validate(dict(config))
        runtime.registry.require("channel", parsed.channel)
        env = runtime.jinja
        sources = {"to": parsed.to}
        parts: dict[str, jinja2.Template | str] = {"to": env.from_string(parsed.to)}
        files: dict[str, str] = {}
        if parsed.template is not None:
            for part, name in (("subject", "subject.txt"), ("text", "body.txt"), ("html", "body.html")):
                path = f"{parsed.template}/{name}"
                try:
                    source, filename, _ = env.loader.get_source(env, path)  # type: ignore[union-attr]
                    sources[part], files[part] = source, filename or path
                except jinja2.TemplateNotFound:
                    if part != "html":
                        raise ConfigurationError(f"template {path!r} not found") from None
                    continue
                env.get_template(path)  # a syntax error is found now, with its file and line
                parts[part] = path  # .html files are autoescaped by their extension
        else:
            inline = {k: v for k, v in (("subject", parsed.subject), ("text", parsed.text), ("html", parsed.html))
                      if v is not None}
            sources.update(inline)
            parts.update({part: env.from_string(src) for part, src in inline.items() if part != "html"})
            if "html" in inline:  # inline HTML is autoescaped as HTML files are
                parts["html"] = env.overlay(autoescape=True).from_string(inline["html"])
        return CompiledMessage(parsed.channel, parts, sources, files)

    def templates(self, config: CompiledMessage) -> dict[str, str]:
        return dict(config.sources)

    def blocks(self, config: CompiledMessage, runtime: Runtime) -> bool:
        return runtime.registry.channel(config.channel, runtime).blocking

    def execute(self, ctx: StepContext) -> StepResult:
        msg: CompiledMessage = ctx.config
        env = ctx.runtime.jinja
        render = ctx.render  # what _render calls, looked up once for the parts
        rendered = {part: render(template) for part in ("to", "subject", "text", "html")
                    if (template := msg.template(env, part)) is not None}
        to = rendered["to"].strip()
        if not to:
            raise PermanentStepError("no recipient: the 'to' address rendered empty")
        message = Message(
            to=to, subject=rendered["subject"].strip(), text=rendered["text"], html=rendered.get("html"),
            idempotency_key=ctx.idempotency_key, run_id=ctx.run_id, campaign_id=ctx.campaign_id, at=ctx.now,
        )
        delivery = ctx.runtime.registry.channel(msg.channel, ctx.runtime).send(message)
        detail = {"channel": msg.channel, "to": to, **delivery.detail}
        if delivery.message_id:
            detail["message_id"] = delivery.message_id
        return StepResult(detail=detail)


class UpdateCustomField(StepType):
    """update_custom_field: sets a custom field on the target through a field updater."""

    name = "update_custom_field"
    side_effect = True
    description = "Sets a custom field on the target."

    class Config(_Config):
        updater: str = "database"
        field: str = Field(min_length=1)
        value: str = Field(description="A template, e.g. Approved")
        metadata: dict[str, str] = Field(default_factory=dict, description="Stored with the value (templates).")

    def compile(self, config: Any, runtime: Runtime) -> Any:
        parsed = self.Config.model_validate(dict(config))
        runtime.registry.require("field updater", parsed.updater)
        return parsed, runtime.jinja.from_string(parsed.value), _compile_all(runtime, parsed.metadata)

    def templates(self, config: Any) -> dict[str, str]:
        return {"value": config[0].value, **{f"metadata.{k}": v for k, v in config[0].metadata.items()}}

    def execute(self, ctx: StepContext) -> StepResult:
        parsed, value_template, metadata = ctx.config
        value = _render(value_template, ctx)
        ctx.runtime.registry.field_updater(parsed.updater, ctx.runtime).update(FieldUpdate(
            target_key=ctx.target_key, field=parsed.field, value=value, idempotency_key=ctx.idempotency_key,
            run_id=ctx.run_id, campaign_id=ctx.campaign_id, at=ctx.now,
            metadata={k: _render(t, ctx) for k, t in metadata.items()},
        ))
        return StepResult.follow(field=parsed.field, value=value, updater=parsed.updater)


class Enforcement(StepType):
    """enforcement_action: removes access through an enforcement action; the result lands in the ledger."""

    name = "enforcement_action"
    side_effect = True
    description = "Removes access through an enforcement action."

    class Config(_Config):
        action: str = Field(min_length=1)
        params: dict[str, str] = Field(default_factory=dict, description="Values are templates.")

    def compile(self, config: Any, runtime: Runtime) -> Any:
        parsed = self.Config.model_validate(dict(config))
        runtime.registry.require("enforcement action", parsed.action)
        return parsed, _compile_all(runtime, parsed.params)

    def templates(self, config: Any) -> dict[str, str]:
        return {f"params.{k}": v for k, v in config[0].params.items()}

    def execute(self, ctx: StepContext) -> StepResult:
        parsed, params = ctx.config
        result = ctx.runtime.registry.enforcement_action(parsed.action, ctx.runtime).enforce(
            EnforcementRequest(
                target_key=ctx.target_key, target=ctx.target, params={k: _render(t, ctx) for k, t in params.items()},
                idempotency_key=ctx.idempotency_key, run_id=ctx.run_id, campaign_id=ctx.campaign_id,
            )
        )
        if not result.removed:
            # The action ran but the access is still there: a failure that the run's failure edge handles.
            raise PermanentStepError(f"{parsed.action}: access not removed: {dict(result.detail)}")
        return StepResult.follow(action=parsed.action, removed=True, **dict(result.detail))


class SendEvent(StepType):
    """send_event: hands a named event with a rendered payload to every plugin's on_workflow_event."""

    name = "send_event"
    side_effect = True
    description = "Emits an event to plugins."

    class Config(_Config):
        event: str = Field(min_length=1)
        payload: dict[str, str] = Field(default_factory=dict, description="Values are templates.")

    def compile(self, config: Any, runtime: Runtime) -> Any:
        parsed = self.Config.model_validate(dict(config))
        return parsed, _compile_all(runtime, parsed.payload)

    def templates(self, config: Any) -> dict[str, str]:
        return {f"payload.{k}": v for k, v in config[0].payload.items()}

    def blocks(self, config: Any, runtime: Runtime) -> bool:
        return bool(runtime.pm.hook.on_workflow_event.get_hookimpls())  # with no listener, nothing can wait

    def execute(self, ctx: StepContext) -> StepResult:
        parsed, templates = ctx.config
        payload = {k: _render(t, ctx) for k, t in templates.items()}
        hook = ctx.runtime.pm.hook.on_workflow_event
        if hook.get_hookimpls():  # a call to no listener costs pluggy more than the rest of the step
            hook(run={"id": ctx.run_id, "campaign_id": ctx.campaign_id, "target_key": ctx.target_key},
                 name=parsed.event, payload=payload)
        return _emitted(parsed.event)


@lru_cache(maxsize=1024)
def _emitted(event: str) -> StepResult:
    """Every run a send_event node passes gets the same result: made once, its detail read-only as they share it."""
    return StepResult(detail=MappingProxyType({"event": event}))
