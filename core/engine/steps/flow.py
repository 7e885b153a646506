"""Built-in step types that shape a run's path: entry, exit, branches, cohorts, delays, windows, events."""

from __future__ import annotations

import hashlib
from datetime import datetime, time
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Self

import jinja2
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ...definitions.workflow import Duration
from ...errors import TemplateStepError
from ...step import NEXT, TIMEOUT, StepContext, StepResult, StepType
from .local_time import (
    ATTRIBUTE_PATTERN,
    WEEKDAYS,
    TimeOfDay,
    canonical_zone,
    next_local_time,
    next_window_opening,
    run_zone,
)

if TYPE_CHECKING:
    from ...runtime import Runtime

MAX_WEIGHT = 1e9  # any split is expressible well below it, and the sum of many stays finite


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # numbers a run computes with are finite


class EnteredCampaign(StepType):
    """entered_campaign: marks where a run begins."""

    name = "entered_campaign"
    description = "Where a run begins."

    def execute(self, ctx: StepContext) -> StepResult:
        return StepResult.follow()


class LeftCampaign(StepType):
    """left_campaign: ends the run as completed."""

    name = "left_campaign"
    description = "Ends the run."

    class Config(_Config):
        reason: str = ""

    def required_edges(self, config: Any) -> set[str]:
        return set()

    def execute(self, ctx: StepContext) -> StepResult:
        return StepResult.end(reason=ctx.config.reason) if ctx.config.reason else StepResult.end()


class Branch(StepType):
    """branch: follows ``true`` or ``false`` by a sandboxed Jinja2 expression over target and context."""

    name = "branch"
    description = "True/false branch on a condition."

    class Config(_Config):
        condition: str = Field(min_length=1, description="A Jinja2 expression, e.g. target.plan == 'pro'")

    def required_edges(self, config: Any) -> set[str]:
        return {"true", "false"}

    def templates(self, config: Any) -> dict[str, str]:
        return {"condition": "{{ " + config[0].condition + " }}"}

    def compile(self, config: Any, runtime: Runtime) -> Any:
        parsed = self.Config.model_validate(dict(config))
        return parsed, runtime.jinja.compile_expression(parsed.condition, undefined_to_none=False)

    def execute(self, ctx: StepContext) -> StepResult:
        try:
            value = bool(ctx.evaluate(ctx.config[1]))
        except jinja2.TemplateError as exc:  # the condition fails on this run's data: the author's to fix
            raise TemplateStepError(f"condition error: {exc}") from None
        return StepResult.follow("true" if value else "false")


class RandomCohort(StepType):
    """random_cohort: splits runs by weight, deterministically per run, along edges named after cohorts."""

    name = "random_cohort"
    description = "Weighted random split; the same run always lands in the same cohort."

    class Config(_Config):
        cohorts: dict[str, float] = Field(min_length=1, description="Cohort name -> weight.")
        seed: str = ""

        @field_validator("cohorts")
        @classmethod
        def _positive(cls, value: dict[str, float]) -> dict[str, float]:
            bad = [name for name, weight in value.items() if not 0 < weight <= MAX_WEIGHT]
            if bad:
                raise ValueError(f"weights must be positive, at most {MAX_WEIGHT:.0f}: {', '.join(bad)}")
            return value

    def required_edges(self, config: Any) -> set[str]:
        return set(config.cohorts)

    def execute(self, ctx: StepContext) -> StepResult:
        cohorts = ctx.config.cohorts
        digest = hashlib.sha256(f"{ctx.config.seed}:{ctx.run_id}:{ctx.node_id}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * sum(cohorts.values())
        names = list(cohorts)
        cohort = names[-1]  # float rounding can leave the point at the very end
        for name in names:
            point -= cohorts[name]
            if point < 0:
                cohort = name
                break
        return _in_cohort(ctx.node_id, cohort)


@lru_cache(maxsize=1024)
def _in_cohort(node_id: str, cohort: str) -> StepResult:
    """The result is the same for every run a node puts in a cohort: made once (a frozen result costs a microsecond
    to make), its mappings read-only since every such run shares them."""
    return StepResult(edge=cohort, detail=MappingProxyType({"cohort": cohort}),
                      context_updates=MappingProxyType({f"cohort_{node_id}": cohort}))


class TimeDelay(StepType):
    """time_delay: parks the run for a fixed duration (ISO 8601 like PT2H or P3D, or seconds), then, with ``at``,
    until the next such local time (the target's own zone with ``timezone_attribute``, else ``timezone``)."""

    name = "time_delay"
    waits = True
    description = "Waits for a duration, then optionally until a local time of day."

    class Config(_Config):
        duration: Duration = Field(description="ISO 8601 duration (PT2H, P3D) or seconds, up to 10 years")
        at: TimeOfDay | None = Field(default=None, description='After the duration, wait for this local time '
                                                              '("09:00")')
        timezone: str | None = Field(default=None, description="The zone of at (default UTC), and the fallback "
                                                               "of timezone_attribute")
        timezone_attribute: str | None = Field(default=None, pattern=ATTRIBUTE_PATTERN,
                                               description="The target attribute holding its own IANA zone")

        @field_validator("timezone", "timezone_attribute")
        @classmethod
        def _zone(cls, value: str | None, info: ValidationInfo) -> str | None:
            if value is not None and "at" in info.data and info.data["at"] is None:
                raise ValueError('says whose clock `at` reads: give at, e.g. at: "09:00"')
            return canonical_zone(value) if value is not None and info.field_name == "timezone" else value

    def execute(self, ctx: StepContext) -> StepResult:
        config = ctx.config
        if config.at is None:
            until = datetime.fromisoformat(ctx.wait["until"]) if ctx.wait else ctx.now + config.duration
            return StepResult.follow() if ctx.now >= until else StepResult.wait(until=until)
        chosen = run_zone(ctx.target, config.timezone_attribute, config.timezone or "UTC")
        until = (datetime.fromisoformat(ctx.wait["until"]) if ctx.wait
                 else next_local_time(ctx.now + config.duration, config.at, chosen.zone))
        detail = {**chosen.detail, "local_time": until.astimezone(chosen.zone).isoformat()}
        return StepResult.follow(**detail) if ctx.now >= until else _wait(until, detail)


def _wait(until: datetime, detail: dict[str, str]) -> StepResult:
    return StepResult(edge=None, waiting=True, wait_until=until, detail=detail)


class TimeWindow(StepType):
    """time_window: lets a run pass only on allowed days between two local times, else waits for the next; in the
    target's own zone with ``timezone_attribute``, else in ``timezone``."""

    name = "time_window"
    waits = True
    description = "Waits until the next allowed day and hour in a time zone."

    class Config(_Config):
        days: list[str] = Field(default_factory=lambda: list(WEEKDAYS[:5]))
        start: TimeOfDay = time(9, 0)
        end: TimeOfDay = time(17, 0)
        timezone: str = Field(default="UTC", description="The window's zone, and the fallback of timezone_attribute")
        timezone_attribute: str | None = Field(default=None, pattern=ATTRIBUTE_PATTERN,
                                               description="The target attribute holding its own IANA zone")

        @field_validator("days")
        @classmethod
        def _days(cls, value: list[str]) -> list[str]:
            days = [d.lower()[:3] for d in value]
            unknown = [d for d in days if d not in WEEKDAYS]
            if unknown or not days:
                raise ValueError(f"days must be some of {', '.join(WEEKDAYS)}")
            return days

        @field_validator("timezone")
        @classmethod
        def _zone(cls, value: str) -> str:
            return canonical_zone(value)

        @model_validator(mode="after")
        def _order(self) -> Self:
            if self.start >= self.end:
                raise ValueError("start must be before end")
            return self

    def execute(self, ctx: StepContext) -> StepResult:
        config = ctx.config
        if config.timezone_attribute is None:  # the node's zone: no detail, as before target zones
            opens = next_window_opening(ctx.now, config)
            return StepResult.follow() if opens <= ctx.now else StepResult.wait(until=opens)
        chosen = run_zone(ctx.target, config.timezone_attribute, config.timezone)
        opens = next_window_opening(ctx.now, config, chosen.zone)
        detail = {**chosen.detail, "local_time": opens.astimezone(chosen.zone).isoformat()}
        return StepResult.follow(**detail) if opens <= ctx.now else _wait(opens, detail)


class WaitForEvent(StepType):
    """wait_for_event: waits for one of the named events; an edge per event name or ``next``; ``timeout``."""

    name = "wait_for_event"
    waits = True
    description = "Waits for an event from outside (a decision, a click), with an optional timeout."

    class Config(_Config):
        events: list[str] = Field(min_length=1)
        timeout: Duration | None = Field(default=None, description="ISO 8601 duration, up to 10 years; take "
                                                                    "'timeout' then")

    def required_edges(self, config: Any) -> set[str]:
        return {TIMEOUT} if config.timeout is not None else set()

    def allowed_edges(self, config: Any) -> set[str]:
        return {NEXT, TIMEOUT, *config.events}

    def execute(self, ctx: StepContext) -> StepResult:
        wanted = set(ctx.config.events)
        for event in ctx.events:
            if event.name in wanted:
                return StepResult(
                    edge=event.name if event.name in ctx.edges else NEXT,
                    detail={"event": event.name, "event_id": event.id},
                    consumed_events=(event.id,),
                    # The payload stays under its own key: whatever it holds cannot overwrite the event's name or
                    # time, which decisions and their Action Time are read from.
                    context_updates={"last_event": {"name": event.name, "at": event.created_at.isoformat(),
                                                    "payload": dict(event.payload)}},
                )
        until = None
        if ctx.config.timeout is not None:
            until = datetime.fromisoformat(ctx.wait["until"]) if ctx.wait else ctx.now + ctx.config.timeout
            if ctx.now >= until:
                return StepResult.follow(TIMEOUT)
        return StepResult.wait(until=until, events=tuple(ctx.config.events))
