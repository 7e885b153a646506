"""Signals from outside into runs: a decision, an open, a click. Delivery wakes a waiting run at once."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from sqlalchemy import ColumnElement, Connection, insert, select, update

from ..audit import Actor, AuditObject, AuditSubType, AuditType, record
from ..db import writing
from ..db.schema import FINAL_STATUSES, campaign_versions, campaigns, events, runs
from ..errors import CampaignkitError, InvalidState, NotFound, PluginError
from ..kinds import CampaignKind

if TYPE_CHECKING:
    from ..runtime import Runtime

# Events only the product itself raises: deadlines (the scheduler) in every kind, and each kind's own
# (CampaignKind.system_events: an access review's decisions and delivery failures, a simulation's tracking events).
# People cannot post them through the CLI or the API, so a forged decision, time or result never enters a run that
# way. A journey's opens and clicks come from outside and stay open to them.
SYSTEM_EVENTS = frozenset({"deadline"})
MAX_PAYLOAD_KEYS = 32
MAX_PAYLOAD_TEXT = 2000

EventName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]{0,99}$")]
PAYLOAD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")


class InvalidEvent(CampaignkitError):
    """An event a person sent that is refused: a reserved name, or a payload that does not fit."""


class EventInput(BaseModel):
    """An event as people send it (``campaignkit event send``, ``POST /api/runs/{id}/events``): a name, and a flat
    payload of short values, kept under the event's own ``payload`` key. Whether the name is reserved for the
    run's kind is checked when it is recorded (``reserved_events``)."""

    model_config = ConfigDict(extra="forbid")

    name: EventName
    payload: dict[str, Any] = Field(default_factory=dict, max_length=MAX_PAYLOAD_KEYS)

    @field_validator("payload")
    @classmethod
    def _flat(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if not PAYLOAD_KEY.match(key):
                raise ValueError(f"key {key[:64]!r}: letters, digits, _ . - only, up to 64, not starting with a digit")
            if isinstance(item, str):
                if len(item) > MAX_PAYLOAD_TEXT:
                    raise ValueError(f"{key}: text longer than {MAX_PAYLOAD_TEXT} characters")
            elif isinstance(item, float):
                if not math.isfinite(item):
                    raise ValueError(f"{key}: numbers must be finite")
            elif item is not None and not isinstance(item, bool | int):
                raise ValueError(f"{key}: must be text, a number, true, false or null (no objects or lists)")
        return value

    @classmethod
    def checked(cls, name: str, payload: Mapping[str, Any] | None) -> EventInput:
        """Validate outside the API (the CLI): one InvalidEvent naming the field and the problem."""
        try:
            return cls.model_validate({"name": name, "payload": dict(payload or {})})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InvalidEvent(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None


@dataclass(frozen=True)
class EventAudit:
    """The audit record of an event a kind raises itself (a confirmation through its page): one of the kind's own
    ``audit_sub_types``, who acted and from where, and what happened. ``send_event`` writes it with the event."""

    actor: Actor
    sub_type: str
    details: str


def reserved_events(kind: CampaignKind) -> frozenset[str]:
    """The events of a campaign kind that only campaignkit itself may raise."""
    return SYSTEM_EVENTS | kind.system_events


def send_event(
    runtime: Runtime, run_id: int, name: str, payload: Mapping[str, Any] | None = None, *, source: str | None = None,
    actor: Actor | None = None, audit: EventAudit | None = None,
) -> int:
    """Record an event for a run and make the run due now if it is waiting; returns the event id.

    A run that a worker holds is not touched here: the worker wakes it when it writes its batch back.
    ``actor`` is the person who sent it (``event send``, the JSON API): the event is then checked as EventInput
    (raises InvalidEvent), recorded with who sent it, and audited as Interaction Event / Workflow Trigger Request in
    the same transaction. A kind raising one of its own events (a confirmation through its page) passes ``audit``
    instead: the event may be one of its ``system_events``, and the record, under one of the kind's
    ``audit_sub_types``, commits with it or not at all. Events the system sends itself (deadlines, digests) come
    with neither, or through ``record_event``, and are not audited here.
    """
    if actor is not None and audit is not None:
        raise ValueError("send_event: an event sent by a person (actor) or raised by a kind (audit), not both")
    if actor is not None:
        checked = EventInput.checked(name, payload)
        name, payload = checked.name, checked.payload
    now = runtime.clock.now()
    with writing(runtime.engine) as conn:
        if actor is not None:
            _refuse_reserved(runtime, conn, run_id, name)
        event_id = record_event(conn, run_id, name, payload, source=source, now=now,
                                sent_by=actor.user_name if actor is not None else None)
        if actor is not None:
            # Payload values may be personal data (an IP, an address): the record names the keys only.
            keys = ", ".join(sorted(payload or {})) or "none"
            record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT,
                   sub_type=AuditSubType.WORKFLOW_TRIGGER_REQUEST, at=now, obj=run_object(conn, run_id),
                   details=f"event {name!r} (event {event_id}) sent to run {run_id} via {source or 'unknown'}; "
                           f"payload keys: {keys}")
        if audit is not None:
            kind = runtime.kind(_kind_of(conn, run_id))
            if audit.sub_type not in kind.audit_sub_types:
                raise PluginError(f"campaign kind {kind.name!r} declares no audit sub-type {audit.sub_type!r} "
                                  f"(CampaignKind.audit_sub_types: {', '.join(kind.audit_sub_types) or 'none'})")
            record(conn, actor=audit.actor, audit_type=kind.audit_sub_types[audit.sub_type][0],
                   sub_type=audit.sub_type, at=now, obj=run_object(conn, run_id), code=kind, details=audit.details)
        return event_id


def record_event(conn: Connection, run_id: int, name: str, payload: Mapping[str, Any] | None, *,
                 source: str | None, now: datetime, sent_by: str | None = None) -> int:
    """send_event inside the caller's transaction, so that what caused it (and its audit) commits with it."""
    row = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no run {run_id}")
    if row.status in FINAL_STATUSES:
        raise InvalidState(f"run {run_id} is {row.status}; it takes no more events")
    event_id = conn.execute(insert(events).values(
        run_id=run_id, name=name, payload=dict(payload or {}), source=source, sent_by=sent_by, created_at=now,
    ).returning(events.c.id)).scalar_one()
    wake_waiting(conn, runs.c.id == run_id, now)
    return int(event_id)


def _kind_of(conn: Connection, run_id: int) -> str:
    kind = conn.execute(select(campaigns.c.kind).join(runs, runs.c.campaign_id == campaigns.c.id)
                        .where(runs.c.id == run_id)).scalar()
    if kind is None:
        raise NotFound(f"no run {run_id}")
    return str(kind)


def _refuse_reserved(runtime: Runtime, conn: Connection, run_id: int, name: str) -> None:
    kind = _kind_of(conn, run_id)
    reserved = reserved_events(runtime.kind(kind))
    if name in reserved:
        raise InvalidEvent(f"name: {name!r} is raised only by campaignkit itself in a {kind} campaign (reserved: "
                           f"{', '.join(sorted(reserved))})")


def run_object(conn: Connection, run_id: int) -> AuditObject:
    """The campaign a run belongs to, at the version the run started on: what an audit record about the run names."""
    row = conn.execute(select(campaigns.c.id, campaigns.c.name, campaigns.c.folder, campaign_versions.c.major,
                              campaign_versions.c.minor)
                       .join(runs, runs.c.campaign_id == campaigns.c.id)
                       .join(campaign_versions, campaign_versions.c.id == runs.c.version_id)
                       .where(runs.c.id == run_id)).one()
    return AuditObject(row.id, row.name, row.folder, (row.major, row.minor))


def wake_waiting(conn: Connection, which: ColumnElement[bool], now: datetime) -> None:
    """Make waiting runs due now so they see their new events; a paused campaign's runs wake on resume."""
    paused = select(campaigns.c.id).where(campaigns.c.state == "paused")
    waiting = (which, runs.c.status == "waiting")
    conn.execute(update(runs).where(*waiting, runs.c.lease_owner.is_(None), runs.c.campaign_id.not_in(paused))
                 .values(due_at=now))
    conn.execute(update(runs).where(*waiting, runs.c.campaign_id.in_(paused)).values(paused_due_at=now))
