"""assign: chooses who must act on a run, and never the person the run is about (no one reviews their own access).

Identities are compared canonically (case, surrounding space, plus-addressing, domain aliases), so
``Ada+review@Corp.Example.org`` is still Ada. The choice is made again at every hand-over (escalation): a fallback
who is the person under review is skipped, and when nobody is left the run takes its ``none`` edge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...errors import PermanentStepError
from ...step import NEXT, StepContext, StepResult, StepType
from ...templating import render

if TYPE_CHECKING:
    from ...runtime import Runtime

NONE = "none"


class IdentityRules(BaseModel):
    """How two identities (e-mail addresses, logins) are compared: case and surrounding space never matter."""

    model_config = ConfigDict(extra="forbid")

    plus_addressing: bool = Field(default=True, description="Treat name+tag@domain as name@domain.")
    domain_aliases: dict[str, str] = Field(
        default_factory=dict, description="Alias domain -> its canonical domain, e.g. {corp.example.org: example.org}."
    )

    @field_validator("domain_aliases")
    @classmethod
    def _lower(cls, value: dict[str, str]) -> dict[str, str]:
        return {alias.strip().lower(): domain.strip().lower() for alias, domain in value.items()}

    def canonical(self, identity: str) -> str:
        text = identity.strip().lower()
        local, at, domain = text.rpartition("@")
        if not at:
            return text
        if self.plus_addressing:
            local = local.split("+", 1)[0]
        return f"{local}@{self.domain_aliases.get(domain, domain)}"


class AssignConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidates: list[str] = Field(
        min_length=1, description="Templates tried in order: who should act, then who takes over when they cannot.")
    subject: str = Field(default="", description="Template: the identity of the person the run is about; the run "
                                                  "is never assigned to them.")
    hand_over: bool = Field(default=False, description="A hand-over (escalation): the current assignee is skipped "
                                                       "too, and empty candidates are passed over.")
    identity: IdentityRules = Field(default_factory=IdentityRules)


class Assign(StepType):
    """assign: sets the run's assignee to the first eligible candidate; ``none`` when there is nobody."""

    name = "assign"
    description = "Chooses who must act: never the person the run is about; again at every hand-over."
    Config = AssignConfig

    def allowed_edges(self, config: Any) -> set[str]:
        return {NEXT, NONE}

    def compile(self, config: Any, runtime: Runtime) -> Any:
        parsed = AssignConfig.model_validate(dict(config))
        env = runtime.jinja
        return parsed, [env.from_string(c) for c in parsed.candidates], env.from_string(parsed.subject)

    def templates(self, config: Any) -> dict[str, str]:
        parsed: AssignConfig = config[0]
        return {**{f"candidates.{i}": c for i, c in enumerate(parsed.candidates)}, "subject": parsed.subject}

    def execute(self, ctx: StepContext) -> StepResult:
        parsed, candidates, subject_template = ctx.config
        rules: IdentityRules = parsed.identity
        variables = ctx.template_vars()
        subject = rules.canonical(render(subject_template, variables))
        names = [render(template, variables).strip() for template in candidates]
        current = rules.canonical(str(ctx.facets.get("assignee") or "")) if parsed.hand_over else ""
        if not parsed.hand_over and not names[0]:
            return self._nobody(ctx, "no assignee given")
        passed_over = []
        for name in names:
            identity = rules.canonical(name)
            if not identity:
                continue
            if subject and identity == subject:
                passed_over.append(f"{name} (the person under review)")
            elif current and identity == current:
                passed_over.append(f"{name} (already assigned)")
            else:
                return StepResult(edge=NEXT, facets={"assignee": name}, context_updates={"assignee": name},
                                  detail={"assignee": name, **({"passed_over": passed_over} if passed_over else {})})
        reason = ("nobody to hand over to" if parsed.hand_over
                  else "no assignee other than the person under review")
        return self._nobody(ctx, f"{reason}: {', '.join(passed_over)}" if passed_over else reason)

    @staticmethod
    def _nobody(ctx: StepContext, reason: str) -> StepResult:
        if NONE not in ctx.edges:
            raise PermanentStepError(f"{reason} (the node has no 'none' edge)")
        return StepResult(edge=NONE, detail={"problem": reason}, context_updates={"assignment_problem": reason})
