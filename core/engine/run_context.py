"""A run as the engine holds it: the bookkeeping inside its context (user data never starts with an underscore), its
visits' idempotency keys, and its state while a worker's batch advances it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..step import RunEvent
    from .compiled import CompiledWorkflow

VISITS = "_visits"  # visits so far, by node
VISIT = "_visit"  # the current node's visit: a new visit gets a new idempotency key
WAIT = "_wait"  # the wait the current node started: since, until, events


def idempotency_key(run_id: int, node_id: str, visit: int) -> str:
    """Stable across retries, redeliveries and workers: plugins use it to make side effects happen once."""
    return f"ck:{run_id}:{node_id}:{visit}"


def entering(context: dict[str, Any], node_id: str) -> dict[str, Any]:
    """Count a new visit of ``node_id`` in a run's context (a new visit gets a new idempotency key)."""
    visits = context.setdefault(VISITS, {})
    visits[node_id] = visits.get(node_id, 0) + 1
    context[VISIT] = visits[node_id]
    context.pop(WAIT, None)
    return context


@dataclass
class RunState:
    id: int
    campaign_id: str
    lease_token: int
    launch_id: int
    workflow: CompiledWorkflow
    target_key: str
    target: dict[str, Any]
    context: dict[str, Any]
    node_id: str
    attempt: int  # failed attempts of the current visit
    status: str = "active"
    due_at: datetime | None = None
    error: str | None = None
    steps_taken: int = 0
    events: list[RunEvent] = field(default_factory=list)
    consumed: list[int] = field(default_factory=list)
    facets: dict[str, Any] = field(default_factory=dict)
    claimed_facets: tuple[Any, ...] = ()  # the facets as claimed, in RUN_FACETS order: only changed ones are written

    @property
    def visit(self) -> int:
        return int(self.context[VISIT])

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "terminated")

    def enter(self, node_id: str) -> None:
        entering(self.context, node_id)
        self.node_id = node_id
        self.attempt = 0
