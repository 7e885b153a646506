"""The small interfaces plugins implement: one base class per kind of registered object."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from .runtime import Runtime


class NoConfig(BaseModel):
    """For plugins that take no configuration; any key given is an error."""

    model_config = ConfigDict(extra="forbid")


class Component:
    """Something a plugin registers under a unique name, built with its validated config.

    ``Config`` is the plugin's own pydantic model for its table ``plugins.config.<config_key>``; the key is the
    name unless a component of another kind already uses that name for its table (the ``webhook`` enforcement
    action reads ``plugins.config.webhook_enforcement`` because the ``webhook`` audit sink reads ``webhook``).
    """

    name: ClassVar[str]
    config_key: ClassVar[str | None] = None
    Config: ClassVar[type[BaseModel]] = NoConfig
    # False for a component whose calls never wait on anything outside the process (no network, disk or lock held
    # elsewhere): the worker then runs the steps that use it inline instead of on its thread pool under a timeout.
    blocking: ClassVar[bool] = True

    @classmethod
    def settings_key(cls) -> str:
        return cls.config_key or cls.name

    def __init__(self, config: BaseModel, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime

    def close(self) -> None:
        """Release connections; called when the runtime shuts down."""


# --- delivery channels -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    text: str
    html: str | None
    idempotency_key: str
    run_id: int
    campaign_id: str
    headers: Mapping[str, str] = dataclass_field(default_factory=dict)
    # When the message was first composed (the first attempt of its step): channels date it with this, not the
    # moment of sending, so a retry or a redelivery sends the same bytes under the same idempotency key.
    at: datetime | None = None
    # The From address, when not the channel's own (a simulation's attack names its sender).
    sender: str | None = None
    # Where delivery status notifications go (the SMTP envelope sender, e.g. a per-message VERP address), and what
    # to ask of them: the DSN NOTIFY conditions (SUCCESS, FAILURE, DELAY) and an envelope id (ENVID) they quote.
    # Channels without such a thing ignore them; smtp asks only servers that offer DSN.
    return_path: str | None = None
    notify: tuple[str, ...] = ()
    envelope_id: str | None = None


@dataclass(frozen=True)
class Delivery:
    """What a channel reports back; ``message_id`` lands in the step record."""

    message_id: str | None = None
    detail: Mapping[str, Any] = dataclass_field(default_factory=dict)


class Channel(Component, ABC):
    """Delivers messages (email, chat, SMS). Raise StepError(temporary=...) on failure."""

    @abstractmethod
    def send(self, message: Message) -> Delivery: ...


# --- enforcement, custom fields ------------------------------------------------------------------------


@dataclass(frozen=True)
class EnforcementRequest:
    target_key: str
    target: Mapping[str, Any]
    params: Mapping[str, Any]
    idempotency_key: str
    run_id: int
    campaign_id: str


@dataclass(frozen=True)
class EnforcementResult:
    removed: bool
    detail: Mapping[str, Any] = dataclass_field(default_factory=dict)


class EnforcementAction(Component, ABC):
    """Removes access (a group membership, an account). Must be safe to repeat with the same key."""

    @abstractmethod
    def enforce(self, request: EnforcementRequest) -> EnforcementResult: ...


@dataclass(frozen=True)
class FieldUpdate:
    target_key: str
    field: str
    value: Any
    idempotency_key: str
    run_id: int
    campaign_id: str
    at: datetime
    metadata: Mapping[str, Any] = dataclass_field(default_factory=dict)


class FieldUpdater(Component, ABC):
    """Sets a custom field on a target, in campaignkit's database or an external inventory."""

    @abstractmethod
    def update(self, update: FieldUpdate) -> None: ...


# --- tracked links -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One request to a recipient's tracked link (an open, a click, a form sent), as hit detectors see it."""

    event: str  # opened, clicked, submitted, reported...
    method: str  # GET, HEAD, POST
    user_agent: str
    client_ip: str | None
    at: datetime
    sent_at: datetime | None  # when the email went out
    page_loaded: bool  # the recipient's link page was loaded before this hit
    confirmed: bool  # the page's script confirmed it (a person's browser ran it)
    rules: Mapping[str, Any]  # the campaign's scanner settings (user_agents, networks, seconds_after_delivery...)


class HitDetector(Component, ABC):
    """Tells mail-security scanners (which open and click links before people do) from people."""

    @abstractmethod
    def classify(self, hit: Hit) -> str | None:
        """Why the hit is a scanner's, in a few words ("scanner user agent"), or None when it may be a person's."""


# --- training ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingAssignment:
    """A course assigned to one person (after a phishing simulation, say)."""

    course: str
    email: str
    name: str
    run_id: int
    campaign_id: str
    idempotency_key: str  # the same for every attempt of this assignment: enrol once
    link: str  # campaignkit's own page for this person's course (the built-in provider serves it)
    completion_url: str  # where an external provider reports progress (a signed POST; docs/phishing.md#training)


class TrainingProvider(Component, ABC):
    """Assigns courses: campaignkit's own pages, or a learning-management system reached over HTTP."""

    @abstractmethod
    def assign(self, assignment: TrainingAssignment) -> str:
        """Enrol the person (safe to repeat with the same idempotency key); return the link they follow to take
        the course. Raise StepError(temporary=...) on failure."""


# --- audit sinks, audiences ----------------------------------------------------------------------------


class AuditSink(Component, ABC):
    """Receives audit records after commit, at least once; each carries its audit_id to drop repeats."""

    @abstractmethod
    def emit(self, records: Sequence[Mapping[str, Any]]) -> None: ...


@dataclass(frozen=True)
class Target:
    key: str
    attributes: Mapping[str, Any]
    line: int | None = None  # where it came from, for error messages


class AudienceSource(Component, ABC):
    """Streams targets. Raise AudienceError naming the line (or record) of a bad entry."""

    @abstractmethod
    def targets(self, spec: Mapping[str, Any], base_dir: Path) -> Iterator[Target]: ...


__all__ = [
    "AudienceSource",
    "AuditSink",
    "Channel",
    "Component",
    "Delivery",
    "EnforcementAction",
    "EnforcementRequest",
    "EnforcementResult",
    "FieldUpdate",
    "FieldUpdater",
    "Hit",
    "HitDetector",
    "Message",
    "NoConfig",
    "Target",
    "TrainingAssignment",
    "TrainingProvider",
]
