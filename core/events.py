"""Signals from outside into runs: a decision, an open, a click. Delivery wakes a waiting run at once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, insert, select, update

from .audit import Actor, AuditObject, AuditSubType, AuditType, record
from .db import writing
from .errors import InvalidState, NotFound
from .schema import FINAL_STATUSES, campaign_versions, campaigns, events, runs

if TYPE_CHECKING:
    from .runtime import Runtime


def send_event(
    runtime: Runtime, run_id: int, name: str, payload: Mapping[str, Any] | None = None, *, source: str | None = None,
    actor: Actor | None = None,
) -> int:
    """Record an event for a run and make the run due now if it is waiting; returns the event id.

    A run that a worker holds is not touched here: the worker wakes it when it writes its batch back.
    ``actor`` is the person who sent it (``event send``, the JSON API): the event is then audited as Interaction
    Event / Trigger Request in the same transaction. Events the system sends itself (deadlines, digests, decisions
    whose own record the review service writes) go through ``record_event`` and are not audited here.
    """
    now = runtime.clock.now()
    with writing(runtime.engine) as conn:
        event_id = record_event(conn, run_id, name, payload, source=source, now=now)
        if actor is not None:
            # Payload values may be personal data (an IP, an address): the record names the keys only.
            keys = ", ".join(sorted(payload or {})) or "none"
            record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT, sub_type=AuditSubType.TRIGGER_REQUEST,
                   at=now, obj=run_object(conn, run_id),
                   details=f"event {name!r} (event {event_id}) sent to run {run_id} via {source or 'unknown'}; "
                           f"payload keys: {keys}")
        return event_id


def record_event(conn: Connection, run_id: int, name: str, payload: Mapping[str, Any] | None, *,
                 source: str | None, now: datetime) -> int:
    """send_event inside the caller's transaction, so that what caused it (and its audit) commits with it."""
    row = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no run {run_id}")
    if row.status in FINAL_STATUSES:
        raise InvalidState(f"run {run_id} is {row.status}; it takes no more events")
    event_id = conn.execute(insert(events).values(
        run_id=run_id, name=name, payload=dict(payload or {}), source=source, created_at=now,
    ).returning(events.c.id)).scalar_one()
    wake_waiting(conn, runs.c.id == run_id, now)
    return int(event_id)


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
