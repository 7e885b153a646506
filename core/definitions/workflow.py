"""Campaign definitions: the workflow graph, audience, schedule and settings, as pydantic models."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from .entry import EntryRules

NODE_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$"
EDGE_LABEL_LENGTH = 100  # step_records.edge

# Every duration and number a definition holds is bounded so that a run can always compute with it: now + ten years
# is far inside what datetime, JSON and both databases hold, and no wait, retry or deadline needs longer.
MAX_DURATION = timedelta(days=3650)
MAX_SECONDS = MAX_DURATION.total_seconds()
MAX_STEP_TIMEOUT_SECONDS = 86_400.0  # one plugin call; a lease would have expired long before
EARLIEST_START = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_START = datetime(3000, 1, 1, tzinfo=UTC)
# Definitions hold finite numbers only: JSON has no Infinity or NaN, and a run cannot wait for them.
_MODEL = ConfigDict(extra="forbid", allow_inf_nan=False)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """"; did you mean 'x'?" for the closest known name, or nothing when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _bounded(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    if value > MAX_DURATION:
        raise ValueError(f"must be at most {MAX_DURATION.days} days (10 years)")
    return value


def _positive(value: timedelta) -> timedelta:
    if value < timedelta(seconds=1):
        raise ValueError("must be at least one second")
    return _bounded(value)


# An ISO 8601 duration (PT2H, P3D) or seconds, from zero (or one second) to ten years.
Duration = Annotated[timedelta, AfterValidator(_bounded)]
PositiveDuration = Annotated[timedelta, AfterValidator(_positive)]


class RetryPolicy(BaseModel):
    model_config = _MODEL

    max_attempts: int = Field(default=3, ge=1, le=100, description="Attempts before the failure edge.")
    backoff_seconds: float = Field(default=30, ge=0, le=MAX_SECONDS, description="Wait before the second attempt.")
    backoff_factor: float = Field(default=2, ge=1, le=10, description="Each later wait is this much longer.")
    max_backoff_seconds: float = Field(default=3600, ge=0, le=MAX_SECONDS)

    def delay(self, attempt: int) -> timedelta:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        # Capping the exponent keeps the product finite (10 ** 100 times ten years) whatever the attempt number.
        seconds = self.backoff_seconds * self.backoff_factor ** min(max(attempt - 1, 0), 100)
        return timedelta(seconds=min(seconds, self.max_backoff_seconds))


class Node(BaseModel):
    model_config = _MODEL

    id: str = Field(pattern=NODE_ID_PATTERN)
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    next: str | None = Field(default=None, description="Shorthand for edges: {next: ID}.")
    edges: dict[str, str] = Field(default_factory=dict, description="Edge label -> node id.")
    retry: RetryPolicy | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=MAX_STEP_TIMEOUT_SECONDS)

    @field_validator("edges", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        # YAML reads `true:` and `false:` as booleans; edge labels are always text.
        if isinstance(value, dict):
            return {(str(k).lower() if isinstance(k, bool) else str(k)): v for k, v in value.items()}
        return value

    @field_validator("edges")
    @classmethod
    def _labels_fit(cls, value: dict[str, str]) -> dict[str, str]:
        for label in value:
            if not 0 < len(label) <= EDGE_LABEL_LENGTH:
                raise ValueError(f"edge label {label[:40]!r}: 1 to {EDGE_LABEL_LENGTH} characters")
        return value

    def all_edges(self) -> dict[str, str]:
        edges = dict(self.edges)
        if self.next is not None:
            edges.setdefault("next", self.next)
        return edges


class Workflow(BaseModel):
    model_config = _MODEL

    start: str | None = Field(default=None, description="First node; default: the entered_campaign node.")
    nodes: list[Node] = Field(min_length=1)
    node_mappings: dict[str, str] = Field(
        default_factory=dict, description="For a new version of a running journey: {node an earlier version had: "
        "node of this one}; runs standing at a node this version removed go on at the node given (docs/journeys.md).")

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
    model_config = _MODEL

    start_at: datetime | None = None
    cron: str | None = None
    timezone: str | None = None
    end_after: PositiveDuration | None = None

    @field_validator("start_at")
    @classmethod
    def _start_in_range(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)  # naive times are UTC, as launches store them
        if not EARLIEST_START <= moment < LATEST_START:
            raise ValueError(f"must be between {EARLIEST_START.year} and {LATEST_START.year - 1}")
        return value


class CampaignDefinition(BaseModel):
    model_config = _MODEL

    name: str = Field(min_length=1, max_length=200)
    folder: str = Field(default="", max_length=200)
    # Up to six digits each: versions are stored as 32-bit integers.
    version: str = Field(default="1.0", pattern=r"^\d{1,6}\.\d{1,6}$", description="major.minor")
    kind: str = Field(default="journey", description="The campaign kind: journey, or one a plugin registers "
                                                       "(`campaignkit plugins` lists them).")
    description: str = ""
    workflow: Workflow
    audience: AudienceSpec | None = None
    schedule: Schedule | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    entry: EntryRules | None = Field(default=None, description="Who may enter again, and whether runs start from "
                                                               "launches or only from entries (entry.py).")

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.version.split(".")
        return int(major), int(minor)
