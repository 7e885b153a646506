"""Delivers audit records to the sinks an admin enabled, after commit, at least once and in audit_id order.

audit_history is the outbox: each sink has a cursor (the last audit_id it accepted) in audit_sink_state. A sink
that fails keeps its cursor and is retried with exponential backoff; it never blocks the engine or other sinks,
and it never loses a record. A newly enabled sink first receives the history it has not seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from ..db import reading, writing
from ..db.schema import audit_history, audit_sink_state

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)

DATABASE_SINK = "database"  # the table itself: always on, never behind
MAX_BACKOFF_SECONDS = 300


@dataclass(frozen=True)
class SinkStatus:
    sink: str
    last_audit_id: int
    lag: int
    failures: int
    last_error: str | None
    last_success_at: datetime | None
    next_attempt_at: datetime | None


def as_record(row: Any) -> dict[str, Any]:
    """An audit row as plain JSON-ready values, the form every sink receives."""
    record = dict(row._mapping)
    record["audit_timestamp"] = record["audit_timestamp"].isoformat()
    return record


def backoff(failures: int) -> timedelta:
    return timedelta(seconds=min(2 ** (failures - 1), MAX_BACKOFF_SECONDS))


class AuditDispatcher:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def sink_names(self) -> list[str]:
        return [name for name in self.runtime.settings.audit.sinks if name != DATABASE_SINK]

    def dispatch(self, batch_size: int = 1000, max_batches: int = 100) -> dict[str, int]:
        """Deliver what each due sink has not yet accepted; returns records delivered per sink."""
        delivered = {}
        for name in self.sink_names:
            delivered[name] = self._dispatch_sink(name, batch_size, max_batches)
        return delivered

    def _dispatch_sink(self, name: str, batch_size: int, max_batches: int) -> int:
        sink = self.runtime.registry.audit_sink(name, self.runtime)
        state = self._state(name)
        now = self.runtime.clock.now()
        if state["next_attempt_at"] is not None and state["next_attempt_at"] > now:
            return 0
        cursor, total = state["last_audit_id"], 0
        for _ in range(max_batches):
            with reading(self.runtime.engine) as conn:
                rows = conn.execute(select(audit_history).where(audit_history.c.audit_id > cursor)
                                    .order_by(audit_history.c.audit_id).limit(batch_size)).all()
            if not rows:
                break
            try:
                sink.emit([as_record(row) for row in rows])
            except Exception as exc:
                failures = state["failures"] + 1
                log.warning("audit sink %r failed (attempt %d): %s", name, failures, exc)
                self._save(name, last_audit_id=cursor, failures=failures, last_error=f"{type(exc).__name__}: {exc}",
                           last_attempt_at=now, next_attempt_at=now + backoff(failures))
                return total
            cursor = rows[-1].audit_id
            total += len(rows)
            state["failures"] = 0
            self._save(name, last_audit_id=cursor, failures=0, last_error=None, last_attempt_at=now,
                       last_success_at=self.runtime.clock.now(), next_attempt_at=None)
        return total

    def _state(self, name: str) -> dict[str, Any]:
        with writing(self.runtime.engine) as conn:
            row = conn.execute(select(audit_sink_state).where(audit_sink_state.c.sink == name)).first()
            if row is not None:
                return dict(row._mapping)
            fresh = {"sink": name, "last_audit_id": 0, "failures": 0, "last_error": None, "last_attempt_at": None,
                     "last_success_at": None, "next_attempt_at": None}
            conn.execute(insert(audit_sink_state).values(**fresh))
            return fresh

    def _save(self, name: str, **values: Any) -> None:
        with writing(self.runtime.engine) as conn:
            conn.execute(update(audit_sink_state).where(audit_sink_state.c.sink == name).values(**values))

    def status(self) -> list[SinkStatus]:
        with reading(self.runtime.engine) as conn:
            head = conn.execute(select(func.coalesce(func.max(audit_history.c.audit_id), 0))).scalar_one()
            states = {row.sink: row for row in conn.execute(select(audit_sink_state))}
        result = [SinkStatus(DATABASE_SINK, head, 0, 0, None, None, None)]
        for name in self.sink_names:
            row = states.get(name)
            last = row.last_audit_id if row else 0
            result.append(SinkStatus(name, last, head - last, row.failures if row else 0,
                                     row.last_error if row else None, row.last_success_at if row else None,
                                     row.next_attempt_at if row else None))
        return result
