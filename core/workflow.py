"""Campaign definitions: the workflow graph, audience, schedule and settings, as pydantic models."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

NODE_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$"


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=100, description="Attempts before the failure edge.")
    backoff_seconds: float = Field(default=30, ge=0, description="Wait before the second attempt.")
    backoff_factor: float = Field(default=2, ge=1, description="Each later wait is this much longer.")
    max_backoff_seconds: float = Field(default=3600, ge=0)

    def delay(self, attempt: int) -> timedelta:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        seconds = self.backoff_seconds * self.backoff_factor ** (attempt - 1)
        return timedelta(seconds=min(seconds, self.max_backoff_seconds))


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=NODE_ID_PATTERN)
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    next: str | None = Field(default=None, description="Shorthand for edges: {next: ID}.")
    edges: dict[str, str] = Field(default_factory=dict, description="Edge label -> node id.")
    retry: RetryPolicy | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)

    @field_validator("edges", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        # YAML reads `true:` and `false:` as booleans; edge labels are always text.
        if isinstance(value, dict):
            return {(str(k).lower() if isinstance(k, bool) else str(k)): v for k, v in value.items()}
        return value

    def all_edges(self) -> dict[str, str]:
        edges = dict(self.edges)
        if self.next is not None:
            edges.setdefault("next", self.next)
        return edges


class Workflow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str | None = Field(default=None, description="First node; default: the entered_campaign node.")
    nodes: list[Node] = Field(min_length=1)

    def node_map(self) -> dict[str, Node]:
        return {node.id: node for node in self.nodes}

    def start_node(self) -> str:
        if self.start:
            return self.start
        for node in self.nodes:
            if node.type == "entered_campaign":
                return node.id
        return self.nodes[0].id


class AudienceSpec(BaseModel):
    """Where targets come from; every other key is for the source (e.g. ``path`` for csv)."""

    model_config = ConfigDict(extra="allow")

    source: str = "csv"
    key: str | list[str] = Field(
        default="key", description="The attribute that identifies a target, or several (joined with '|')."
    )


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_at: datetime | None = None
    cron: str | None = None
    timezone: str | None = None
    end_after: timedelta | None = None


class CampaignDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    folder: str = Field(default="", max_length=200)
    version: str = Field(default="1.0", pattern=r"^\d+\.\d+$", description="major.minor")
    kind: str = Field(default="journey")
    description: str = ""
    workflow: Workflow
    audience: AudienceSpec | None = None
    schedule: Schedule | None = None
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.version.split(".")
        return int(major), int(minor)
