"""Workflow versions prepared for execution: step instances and compiled configs, built once per version."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..db import reading
from ..db.schema import campaign_versions
from ..definitions.workflow import CampaignDefinition, RetryPolicy
from ..errors import NotFound
from ..kinds import CampaignKind
from ..step import StepContext, StepType

if TYPE_CHECKING:
    from ..runtime import Runtime

DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class CompiledNode:
    id: str
    type: str
    step: StepType
    config: Any
    edges: dict[str, str]
    retry: RetryPolicy
    timeout_seconds: float
    pooled: bool  # runs on the worker's thread pool under its timeout (StepType.blocks), not inline


@dataclass(frozen=True)
class CompiledWorkflow:
    version_id: int
    campaign_id: str
    definition: CampaignDefinition
    start: str
    nodes: dict[str, CompiledNode]
    kind: CampaignKind
    settings: Any  # the campaign's settings, parsed once by its kind

    def kind_variables(self, ctx: StepContext) -> Mapping[str, Any]:
        return self.kind.template_variables(self.settings, ctx)

    @property
    def has_kind_variables(self) -> bool:
        return bool(self.kind.template_names)

    @cached_property
    def variables(self) -> Callable[[StepContext], Mapping[str, Any]] | None:
        """What a step context asks for the kind's template variables (StepContext.kind_variables), if any."""
        return self.kind_variables if self.has_kind_variables else None


def compile_workflow(
    definition: CampaignDefinition, version_id: int, campaign_id: str, runtime: Runtime
) -> CompiledWorkflow:
    default_timeout = runtime.settings.worker.step_timeout_seconds
    nodes = {}
    for node in definition.workflow.nodes:
        step = runtime.registry.step_type(node.type)
        config = step.compile(node.config, runtime)
        nodes[node.id] = CompiledNode(
            id=node.id,
            type=node.type,
            step=step,
            config=config,
            edges=node.all_edges(),
            retry=node.retry or DEFAULT_RETRY,
            timeout_seconds=node.timeout_seconds or default_timeout,
            pooled=step.blocks(config, runtime),
        )
    kind = runtime.kind(definition.kind)
    return CompiledWorkflow(version_id, campaign_id, definition, definition.workflow.start_node(), nodes, kind,
                            kind.settings(definition.settings))


class WorkflowCache:
    """Versions never change once runs use them, so a compiled version is kept for the process's life."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._compiled: dict[int, CompiledWorkflow] = {}
        self._lock = threading.Lock()

    def get(self, version_id: int) -> CompiledWorkflow:
        compiled = self._compiled.get(version_id)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(version_id) or self._load(version_id)
                self._compiled[version_id] = compiled
        return compiled

    def _load(self, version_id: int) -> CompiledWorkflow:
        with reading(self.runtime.engine) as conn:
            row = conn.execute(
                select(campaign_versions.c.campaign_id, campaign_versions.c.definition).where(
                    campaign_versions.c.id == version_id
                )
            ).first()
        if row is None:
            raise NotFound(f"campaign version {version_id} does not exist")
        definition = CampaignDefinition.model_validate(row.definition)
        return compile_workflow(definition, version_id, row.campaign_id, self.runtime)
