"""What the mail system says back: delivery status notifications (to the VERP address) and reported emails (to the
report mailbox), applied to the results. Every message is handled idempotently, so reading one twice (at-least-once
from a mailbox) changes nothing the second time.

- delivered: Delivered, with the time and the server's words; the address leaves the bounced mailboxes.
- failed: Failed, with the status code and the server's text; the address joins the bounced mailboxes, and the run
  moves to where a resend can reach it.
- delayed: still Pending; the delay's text is kept for the hover text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from campaignkit.core.db import writing
from campaignkit.core.db.schema import FINAL_STATUSES, runs

from . import store
from .dsn import Notification, parse_notifications, parse_report
from .tracking import HitRequest, record_hits
from .vocabulary import DELIVERED, FAILED, PENDING, UNDELIVERED

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class Ingested:
    delivered: int = 0
    failed: int = 0
    delayed: int = 0
    reported: int = 0
    ignored: int = 0

    def add(self, other: Ingested) -> None:
        for name in ("delivered", "failed", "delayed", "reported", "ignored"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> str:
        parts = [f"{getattr(self, name)} {name}" for name in ("delivered", "failed", "delayed", "reported", "ignored")
                 if getattr(self, name)]
        return ", ".join(parts) or "nothing"


def ingest_message(runtime: Runtime, raw: bytes, *, prefix: str = "bounces") -> Ingested:
    """One message from the bounce or report mailbox: its notifications applied, or, if it is none, the report it
    carries; anything else is ignored (counted)."""
    found = Ingested()
    notifications = [n for n in parse_notifications(raw, prefix=prefix) if n.token]
    if notifications:
        with writing(runtime.engine) as conn:
            for notification in notifications:
                outcome = _apply(conn, notification, runtime.clock.now())
                setattr(found, outcome, getattr(found, outcome) + 1)
        return found
    token = parse_report(raw)
    if token is None:
        found.ignored += 1
        return found
    with writing(runtime.engine) as conn:
        row = store.result_by_token(conn, token)
        if row is None or row.reported_at is not None:  # unknown, or this person's report is in already
            found.ignored += 1
            return found
        reported = record_hits(conn, runtime, [(HitRequest(token=token, event="reported", method="MAIL",
                                                         user_agent="report mailbox", client_ip=None,
                                                         trusted=True),
                                               runtime.clock.now())], lambda _conn, _campaign: {})[0]
    if reported.row is None or reported.expired:
        found.ignored += 1
    else:
        found.reported += 1
    return found


def _apply(conn: Connection, notification: Notification, now: datetime) -> str:
    """One recipient's notification applied once: a repeat (the same status and words again) or one about an
    earlier attempt than the row's (a resend went out since) changes nothing."""
    token, _, attempt = str(notification.token).partition("-")
    row = store.result_by_token(conn, token)
    if row is None or (attempt and attempt != str(row.attempt)):
        return "ignored"
    at = notification.arrived_at or notification.reported_at or now
    detail = {"code": notification.status, "text": notification.diagnostic, "server": notification.remote_mta or ""}
    final = conn.execute(select(runs.c.status).where(runs.c.id == row.run_id)).scalar() in FINAL_STATUSES
    if notification.action in ("delivered", "relayed", "expanded"):
        if row.delivery == DELIVERED and row.delivery_detail == detail:
            return "ignored"
        store.mark_delivery(conn, row.run_id, DELIVERED, at, detail)
        store.remove_bounced(conn, row.email)
        store.record_event(conn, row.run_id, "delivered", detail, now, source="dsn", wake=False)
        return "delivered"
    if notification.action == "failed":
        if row.delivery == FAILED and row.delivery_detail == detail:
            return "ignored"
        store.mark_delivery(conn, row.run_id, FAILED, at, detail)
        store.add_bounced(conn, row.email, notification.status, notification.diagnostic, at, row.campaign_id,
                          row.run_id)
        store.record_event(conn, row.run_id, UNDELIVERED, detail, now, source="dsn", wake=not final)
        return "failed"
    if row.delivery in (None, PENDING):
        store.mark_delivery(conn, row.run_id, PENDING, row.delivery_at or at,
                            {**detail, "text": f"delayed: {notification.diagnostic}"})
    return "delayed"
