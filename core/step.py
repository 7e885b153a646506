"""The step-type interface: what a workflow node does when a run reaches it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from .interfaces import NoConfig
from .templating import TEMPLATE_VARIABLES, Scope

if TYPE_CHECKING:
    import jinja2
    from jinja2.environment import TemplateExpression

    from .runtime import Runtime

NEXT = "next"
FAILURE = "failure"
TIMEOUT = "timeout"


@dataclass(frozen=True)
class RunEvent:
    id: int
    name: str
    payload: Mapping[str, Any]
    created_at: datetime


@dataclass
class StepContext:
    """Everything a step may read; ``context`` is the run's own mutable state, saved with the run."""

    run_id: int
    campaign_id: str
    target_key: str
    target: Mapping[str, Any]
    context: dict[str, Any]
    node_id: str
    visit: int
    attempt: int
    now: datetime
    config: Any
    idempotency_key: str
    runtime: Runtime
    edges: Mapping[str, str] = field(default_factory=dict)  # this node's edges, label -> node id
    wait: Mapping[str, Any] | None = None  # the wait this node started on this visit, if any
    events: list[RunEvent] = field(default_factory=list)  # unconsumed events of this run
    facets: Mapping[str, Any] = field(default_factory=dict)  # the run's assignee, response, response_at, result
    deadline: datetime | None = None  # the run's cycle deadline (schedule.end_after), if it has one
    # The template variables the campaign's kind adds (CampaignKind.template_variables), asked for when needed.
    kind_variables: Callable[[StepContext], Mapping[str, Any]] | None = field(default=None, repr=False)
    # True in a simulation (``campaign simulate``): nothing is sent or changed, ``run_id`` is negative (no such run).
    simulated: bool = False
    _variables: dict[str, Any] | None = field(default=None, init=False, repr=False)
    _scope: Scope | None = field(default=None, init=False, repr=False)

    def template_vars(self) -> dict[str, Any]:
        """What templates see: plain values only (dicts, strings, numbers, times). Nothing here holds the runtime,
        the settings or a connection, so no sandbox escape can walk from a template to a secret. Built once per
        step: a message's parts render from the same variables."""
        if self._variables is None:
            self._variables = {
                **(self.kind_variables(self) if self.kind_variables is not None else {}),
                "target": self.target,
                "context": self.context,
                "run": {"id": self.run_id, "campaign_id": self.campaign_id, "node": self.node_id, **self.facets},
                "now": self.now,
            }
        return self._variables

    def render(self, template: jinja2.Template) -> str:
        """One of the step's templates rendered from ``template_vars()``; a template that fails on the run's data
        raises TemplateStepError naming its file and line. Added in campaignkit 0.3."""
        return self._template_scope().render(template)

    def evaluate(self, expression: TemplateExpression) -> Any:
        """An expression (``runtime.jinja.compile_expression``) evaluated from ``template_vars()``; a Jinja error is
        raised as it is. Added in campaignkit 0.3."""
        return self._template_scope().evaluate(expression)

    def _template_scope(self) -> Scope:
        if self._scope is None:
            self._scope = Scope(self.template_vars())
        return self._scope


@dataclass(frozen=True)
class StepResult:
    """Where the run goes next. ``edge=None`` ends the run; ``waiting`` parks it on this node."""

    edge: str | None = NEXT
    detail: Mapping[str, Any] | None = None
    waiting: bool = False
    wait_until: datetime | None = None
    wait_for: tuple[str, ...] = ()
    consumed_events: tuple[int, ...] = ()
    context_updates: Mapping[str, Any] | None = None
    facets: Mapping[str, Any] | None = None  # assignee, response, response_at, result: see schema.runs

    @classmethod
    def follow(cls, edge: str = NEXT, **detail: Any) -> StepResult:
        if detail or cls is not StepResult:
            return cls(edge=edge, detail=detail or None)
        return _plain(edge)

    @classmethod
    def end(cls, **detail: Any) -> StepResult:
        if detail or cls is not StepResult:
            return cls(edge=None, detail=detail or None)
        return _plain(None)

    @classmethod
    def wait(cls, until: datetime | None = None, events: tuple[str, ...] = (), **detail: Any) -> StepResult:
        return cls(edge=None, waiting=True, wait_until=until, wait_for=events, detail=detail or None)


@lru_cache(maxsize=1024)
def _plain(edge: str | None) -> StepResult:
    """A result with no detail is the same for every run, and frozen: one per edge, not one per step."""
    return StepResult(edge=edge)


class StepType(ABC):
    """A kind of node. Subclasses set ``name`` and ``Config`` and implement ``execute``.

    ``waits``: the step can park a run (a cycle through such a node is allowed).
    ``side_effect``: the step talks to the outside; its idempotency key is stable across retries and redelivery,
    and it runs on the worker's thread pool with a timeout unless ``blocks`` says it cannot wait on anything.
    """

    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = NoConfig
    waits: ClassVar[bool] = False
    side_effect: ClassVar[bool] = False
    description: ClassVar[str] = ""

    def required_edges(self, config: Any) -> set[str]:
        """Edge labels a node of this type must have."""
        return {NEXT}

    def allowed_edges(self, config: Any) -> set[str]:
        """Edge labels a node of this type may have (``failure`` is always allowed)."""
        return self.required_edges(config)

    def templates(self, config: Any) -> dict[str, str]:
        """Template sources in the config, by field name, for validation against undefined variables."""
        return {}

    def blocks(self, config: Any, runtime: Runtime) -> bool:
        """Whether a node with this (compiled) config may wait on something outside (network, disk, another
        process): such a step runs on the worker's thread pool under its timeout; any other runs inline, which
        is cheaper. A side effect blocks unless its type knows better (a send through a channel that declares
        ``blocking = False``). Added in campaignkit 0.3."""
        return self.side_effect

    def compile(self, config: Mapping[str, Any], runtime: Runtime) -> Any:
        """Validate and prepare a node's config once per workflow version; the result is ``ctx.config``."""
        return self.Config.model_validate(dict(config))

    @abstractmethod
    def execute(self, ctx: StepContext) -> StepResult: ...

    def simulate(self, ctx: StepContext) -> StepResult:
        """Where a run would go in a simulation (``campaign simulate``), without touching the outside: nothing sent,
        no access removed, no field or other system changed. A step without side effects runs as it does for real.
        A step with ``side_effect`` overrides this to say what it would do (render what it would send, return
        ``StepResult.follow(...)``, a ``message`` in the detail to show it); one that does not, or raises
        NotImplementedError, cannot be simulated: the simulation stops the target at its node and reports it.
        Added in campaignkit 0.3."""
        if self.side_effect:
            raise NotImplementedError(f"step type {self.name!r} has side effects and offers no simulation")
        return self.execute(ctx)


__all__ = ["FAILURE", "NEXT", "TEMPLATE_VARIABLES", "TIMEOUT", "RunEvent", "StepContext", "StepResult", "StepType"]
