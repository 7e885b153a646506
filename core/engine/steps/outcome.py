"""record_outcome: sets what a run reports in its family's history (assignee, response, result) and context."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...errors import TemplateStepError
from ...step import StepContext, StepResult, StepType
from ...templating import render

if TYPE_CHECKING:
    from ...runtime import Runtime


class OutcomeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(default=None, description="Template: who must act (e.g. the approver).")
    response: str | None = Field(default=None, description="Template: what they answered (e.g. Approved).")
    response_at: str | None = Field(
        default=None, description="'now', 'event' (when the last event arrived) or an ISO time template."
    )
    result: str | None = Field(default=None, description="Template: what acting on it achieved.")
    notify: Literal["request", "reminder"] | None = Field(
        default=None, description="Put the run in the assignee's next digest, as a new request or a reminder."
    )
    context: dict[str, str] = Field(default_factory=dict, description="Context values to set (templates).")

    @model_validator(mode="after")
    def _something(self) -> OutcomeConfig:
        if not (self.assignee or self.response or self.response_at or self.result or self.notify or self.context):
            raise ValueError("set at least one of assignee, response, response_at, result, notify, context")
        return self


class RecordOutcome(StepType):
    name = "record_outcome"
    description = "Records the run's assignee, response and result, and sets context values."
    Config = OutcomeConfig

    def compile(self, config: Any, runtime: Runtime) -> Any:
        parsed = OutcomeConfig.model_validate(dict(config))
        fields = {k: v for k, v in (("assignee", parsed.assignee), ("response", parsed.response),
                                   ("result", parsed.result)) if v is not None}
        if parsed.response_at not in (None, "now", "event"):
            fields["response_at"] = parsed.response_at
        templates = {k: runtime.jinja.from_string(v) for k, v in fields.items()}
        context = {k: runtime.jinja.from_string(v) for k, v in parsed.context.items()}
        return parsed, templates, context

    def templates(self, config: Any) -> dict[str, str]:
        parsed = config[0]
        found = {k: v for k, v in (("assignee", parsed.assignee), ("response", parsed.response),
                                  ("result", parsed.result)) if v is not None}
        found.update({f"context.{k}": v for k, v in parsed.context.items()})
        return found

    def execute(self, ctx: StepContext) -> StepResult:
        parsed, templates, context_templates = ctx.config
        variables = ctx.template_vars()
        facets: dict[str, Any] = {k: render(t, variables).strip() or None for k, t in templates.items()}
        context = {k: render(t, variables) for k, t in context_templates.items()}
        if parsed.response_at == "now":
            facets["response_at"] = ctx.now
        elif parsed.response_at == "event":
            at = (ctx.context.get("last_event") or {}).get("at")
            facets["response_at"] = datetime.fromisoformat(at) if at else ctx.now
        elif "response_at" in facets and facets["response_at"] is not None:
            try:
                facets["response_at"] = datetime.fromisoformat(facets["response_at"])
            except ValueError:
                raise TemplateStepError(
                    f"response_at rendered {facets['response_at'][:60]!r}, not an ISO time"
                ) from None
        from ...db.schema import runs  # the column sizes; imported here to keep step modules light to load

        for name in ("assignee", "response", "result"):
            limit = getattr(runs.c[name].type, "length", None)
            if isinstance(facets.get(name), str) and limit is not None and len(facets[name]) > limit:
                # Both databases must take what one takes: refuse here what PostgreSQL's column would refuse.
                raise TemplateStepError(f"{name} rendered {len(facets[name])} characters; at most {limit}")
        if parsed.notify is not None:
            facets["notify"] = parsed.notify
        if "assignee" in facets:
            context["assignee"] = facets["assignee"]
        return StepResult(detail={k: str(v) for k, v in facets.items()} or None, facets=facets,
                          context_updates=context or None)
