"""Changes to a simulation's results rows and to the bounced mailboxes, each inside the caller's transaction.

Every change is idempotent: a repeated notification, hit or send attempt sets the same values (first times are kept
with COALESCE), so at-least-once delivery of anything that causes them never double-counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from campaignkit.core.db.schema import bounced_mailboxes, events, phishing_results, runs
from campaignkit.core.engine.events import wake_waiting

from .vocabulary import PENDING

RESULTS = phishing_results.c


def result_by_run(conn: Connection, run_id: int) -> Any:
    return conn.execute(select(phishing_results).where(RESULTS.run_id == run_id)).first()


def result_by_token(conn: Connection, token: str) -> Any:
    return conn.execute(select(phishing_results).where(RESULTS.token == token)).first()


def mark_sent(conn: Connection, run_id: int, at: datetime, detail: Mapping[str, Any]) -> None:
    """Accepted by the relay (or written to the outbox): Pending until a notification says more. A notification
    that overtook the send's own write keeps its status."""
    status = conn.execute(select(RESULTS.delivery).where(RESULTS.run_id == run_id)).scalar()
    values: dict[str, Any] = {"sent_at": at}
    if status is None:
        values.update(delivery=PENDING, delivery_at=at, delivery_detail=dict(detail))
    conn.execute(update(phishing_results).where(RESULTS.run_id == run_id).values(values))


def mark_delivery(conn: Connection, run_id: int, status: str, at: datetime, detail: Mapping[str, Any]) -> None:
    conn.execute(update(phishing_results).where(RESULTS.run_id == run_id)
                 .values(delivery=status, delivery_at=at, delivery_detail=dict(detail)))


def blocked(conn: Connection, address: str) -> Any:
    return conn.execute(select(bounced_mailboxes).where(bounced_mailboxes.c.address == address.strip().lower())
                        ).first()


def add_bounced(conn: Connection, address: str, code: str, error: str, at: datetime, campaign_id: str | None,
                run_id: int | None) -> None:
    address = address.strip().lower()[:320]
    values = {"code": code[:40], "error": error[:2000], "last_seen": at, "campaign_id": campaign_id,
              "run_id": run_id}
    if conn.execute(update(bounced_mailboxes).where(bounced_mailboxes.c.address == address).values(**values)
                    ).rowcount == 0:
        conn.execute(insert(bounced_mailboxes).values(address=address, first_seen=at, **values))


def remove_bounced(conn: Connection, address: str) -> bool:
    return bool(conn.execute(delete(bounced_mailboxes).where(
        bounced_mailboxes.c.address == address.strip().lower())).rowcount)


def record_event(conn: Connection, run_id: int, name: str, payload: Mapping[str, Any], at: datetime, *,
                 source: str, wake: bool) -> None:
    """An event on the run, also after it ended (a click during the links' grace period is still a click); a
    waiting run wakes when it waits for this kind of event."""
    conn.execute(insert(events).values(run_id=run_id, name=name, payload=dict(payload), source=source,
                                       created_at=at, consumed_at=None))
    if wake:
        wake_waiting(conn, runs.c.id == run_id, at)
