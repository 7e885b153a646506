"""Digest emails for access reviews: one message per approver with all their pending items of a cycle.

Runs of a `digest: true` review do not send their own request or reminder; they mark themselves (``runs.notify``)
and wait. This sender, run by the scheduler and by `campaignkit work`, gathers the marks into one email per approver
listing every pending item, with a link per item and one to approve or revoke them all. A digest row is written
before the send, so its id gives a stable idempotency key across retries; a temporary failure waits with backoff,
a permanent one turns each newly requested item into Message Delivery Failed through an `undeliverable` event.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import jinja2
from sqlalchemy import Connection, case, desc, insert, select, update

from campaignkit.core.db import reading, writing
from campaignkit.core.db.schema import campaign_versions, campaigns, digest_items, digests, launches, runs
from campaignkit.core.engine.events import record_event
from campaignkit.core.errors import ConfigurationError, StepError, TemplateStepError
from campaignkit.core.interfaces import Message
from campaignkit.core.templating import render
from campaignkit.core.web.links import DEFAULT_LINK_DAYS, LinkText

from .links import decision_link, digest_link
from .settings import AccessReviewSettings

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF = timedelta(seconds=60)


@dataclass(frozen=True)
class DigestStats:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    @property
    def changed_runs(self) -> bool:
        """A failed digest woke runs (undeliverable events) that a worker must now advance."""
        return self.failed > 0


@dataclass(frozen=True)
class _Batch:
    campaign_id: str
    campaign_name: str
    launch_id: int
    assignee: str
    settings: AccessReviewSettings
    expires_at: datetime


class DigestSender:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def send_due(self) -> DigestStats:
        """Send every digest that marked runs are waiting for; returns what happened."""
        now = self.runtime.clock.now()
        sent = retrying = failed = 0
        for batch in self._due_batches(now):
            outcome = self._send(batch, now)
            sent += outcome == "sent"
            retrying += outcome == "retrying"
            failed += outcome == "failed"
        return DigestStats(sent, retrying, failed)

    def _due_batches(self, now: datetime) -> list[_Batch]:
        with reading(self.runtime.engine) as conn:
            marked = conn.execute(
                select(runs.c.campaign_id, runs.c.launch_id, runs.c.assignee)
                .join(campaigns, campaigns.c.id == runs.c.campaign_id)
                # A paused campaign sends nothing until it resumes.
                .where(runs.c.notify.is_not(None), runs.c.status == "waiting", runs.c.assignee.is_not(None),
                       campaigns.c.state != "paused")
                .distinct()
            ).all()
            cycles = {row.id: row for row in conn.execute(
                select(launches.c.id, launches.c.deadline_at, campaigns.c.name, campaign_versions.c.definition)
                .join(campaigns, campaigns.c.id == launches.c.campaign_id)
                .join(campaign_versions, campaign_versions.c.id == launches.c.version_id)
                .where(launches.c.id.in_({row.launch_id for row in marked})))}
            batches = []
            for row in marked:
                cycle = cycles[row.launch_id]
                raw = cycle.definition.get("settings") or {}
                if cycle.definition.get("kind") != "access_review" or not raw.get("digest"):
                    continue  # only digest reviews mark runs; anything else has nobody to gather them
                if self._backing_off(conn, row.launch_id, row.assignee, now):
                    continue
                batches.append(_Batch(row.campaign_id, cycle.name, row.launch_id, row.assignee,
                                      AccessReviewSettings.model_validate(raw),
                                      cycle.deadline_at or now + timedelta(days=DEFAULT_LINK_DAYS)))
        return batches

    @staticmethod
    def _backing_off(conn: Connection, launch_id: int, assignee: str, now: datetime) -> bool:
        last = conn.execute(select(digests.c.status, digests.c.next_attempt_at)
                            .where(digests.c.launch_id == launch_id, digests.c.assignee == assignee)
                            .order_by(desc(digests.c.id)).limit(1)).first()
        return last is not None and last.status == "retrying" and last.next_attempt_at > now

    def _send(self, batch: _Batch, now: datetime) -> str:
        with writing(self.runtime.engine) as conn:
            resumed = self._resume(conn, batch)
            if resumed is not None:  # a retry: the same digest, composed as at its first attempt
                digest_id, attempt, kind, composed, items = resumed
                if not items:  # retrying since a release that kept no items: composed now, and kept from now on
                    items = self._pending_items(conn, batch)
                    self._keep_items(conn, digest_id, items)
                    conn.execute(update(digests).where(digests.c.id == digest_id).values(item_count=len(items)))
                    if not items:
                        conn.execute(update(digests).where(digests.c.id == digest_id).values(
                            status="failed", next_attempt_at=None, error="every item was answered meanwhile"))
                        return "nothing"
            else:
                items = self._pending_items(conn, batch)
                if not items:  # marked runs that were answered meanwhile: nothing to tell
                    conn.execute(update(runs).where(runs.c.launch_id == batch.launch_id,
                                                    runs.c.assignee == batch.assignee,
                                                    runs.c.notify.is_not(None)).values(notify=None))
                    return "nothing"
                kind = "request" if any(item.notify == "request" for item in items) else "reminder"
                digest_id, attempt, composed = self._new_digest(conn, batch, kind, items, now), 1, now
        try:
            message = self._message(batch, items, kind, digest_id, composed)
            delivery = self.runtime.registry.channel(batch.settings.channel, self.runtime).send(message)
        except (TemplateStepError, jinja2.TemplateError) as exc:
            # The author's template, not the approver's mailbox: the items stay pending (never Message Delivery
            # Failed) and the digest is tried again, with backoff, until the template is fixed.
            return self._failed(batch, items, digest_id, min(attempt, MAX_ATTEMPTS), str(exc), True, now)
        except (StepError, ConfigurationError) as exc:
            temporary = isinstance(exc, StepError) and exc.temporary and attempt < MAX_ATTEMPTS
            return self._failed(batch, items, digest_id, attempt, str(exc), temporary, now)
        except Exception as exc:  # a plugin's own bug: kept on the digest row, retried like a temporary failure
            log.exception("digest %s: channel %r raised", digest_id, batch.settings.channel)
            return self._failed(batch, items, digest_id, attempt, f"{type(exc).__name__}: {exc}",
                                attempt < MAX_ATTEMPTS, now)
        with writing(self.runtime.engine) as conn:
            conn.execute(update(digests).where(digests.c.id == digest_id).values(
                status="sent", sent_at=now, message_id=delivery.message_id, error=None, next_attempt_at=None))
            self._close(conn, items)
        log.info("digest %s: %d item(s) to %s", digest_id, len(items), batch.assignee)
        return "sent"

    def _pending_items(self, conn: Connection, batch: _Batch) -> list[Any]:
        """Every item the approver still has to answer in this cycle, marked or not: a digest is complete."""
        return list(conn.execute(
            select(runs.c.id, runs.c.target, runs.c.notify, runs.c.target_key, runs.c.assignment)
            # campaign_id first: the (campaign_id, assignee, target_key) index serves it in key order.
            .where(runs.c.campaign_id == batch.campaign_id, runs.c.assignee == batch.assignee,
                   runs.c.launch_id == batch.launch_id, runs.c.status == "waiting", runs.c.response.is_(None))
            .order_by(runs.c.target_key)
        ).all())

    @staticmethod
    def _resume(conn: Connection, batch: _Batch) -> tuple[int, int, str, datetime, list[Any]] | None:
        """The retrying digest of this approver and cycle, if there is one: its id (so its idempotency key), next
        attempt number, kind, first-attempt time and the items it listed then, as they were listed. A retry sends
        the same message byte for byte; items that came up meanwhile wait for the next digest."""
        last = conn.execute(select(digests.c.id, digests.c.status, digests.c.attempt, digests.c.kind,
                                   digests.c.created_at)
                            .where(digests.c.launch_id == batch.launch_id, digests.c.assignee == batch.assignee)
                            .order_by(desc(digests.c.id)).limit(1)).first()
        if last is None or last.status != "retrying":
            return None
        attempt = int(last.attempt) + 1
        conn.execute(update(digests).where(digests.c.id == last.id).values(attempt=attempt))
        items = list(conn.execute(
            select(runs.c.id, runs.c.target, runs.c.target_key, digest_items.c.assignment,
                   case((digest_items.c.new, "request"), else_="reminder").label("notify"))
            .join(digest_items, digest_items.c.run_id == runs.c.id)
            .where(digest_items.c.digest_id == last.id).order_by(runs.c.target_key)).all())
        return int(last.id), attempt, str(last.kind), last.created_at, items

    @staticmethod
    def _new_digest(conn: Connection, batch: _Batch, kind: str, items: list[Any], now: datetime) -> int:
        """A digest row written before the send (its id is the idempotency key), with the items it lists, whether
        each is new, and the assignment each had: its review-all link decides exactly these, while they are still
        this approver's."""
        digest_id = int(conn.execute(insert(digests).values(
            campaign_id=batch.campaign_id, launch_id=batch.launch_id, assignee=batch.assignee, kind=kind,
            status="retrying", item_count=len(items), attempt=1, created_at=now, next_attempt_at=now,
        ).returning(digests.c.id)).scalar_one())
        DigestSender._keep_items(conn, digest_id, items)
        return digest_id

    @staticmethod
    def _keep_items(conn: Connection, digest_id: int, items: list[Any]) -> None:
        if items:
            conn.execute(insert(digest_items), [{"digest_id": digest_id, "run_id": int(item.id),
                                                 "assignment": int(item.assignment), "new": item.notify == "request"}
                                                for item in items])

    def variables(self, batch: _Batch, items: list[Any], kind: str, digest_id: int, now: datetime) -> dict[str, Any]:
        """What a digest's templates see: plain values only, links as finished strings (see StepContext)."""
        s = batch.settings
        listed = [{"user": item.target.get(s.user_column, ""), "user_email": item.target.get(s.user_email_column, ""),
                   "application": item.target.get(s.application_column, ""), "new": item.notify == "request",
                   "link": decision_link(self.runtime, int(item.id), batch.assignee, int(item.assignment),
                                         batch.expires_at)} for item in items]
        return {
            "campaign": {"id": batch.campaign_id, "name": batch.campaign_name},
            "approver": batch.assignee, "items": listed, "reminder": kind == "reminder",
            "review_all": digest_link(self.runtime, digest_id, batch.assignee, batch.expires_at),
            "deadline": batch.expires_at, "now": now,
        }

    def _message(self, batch: _Batch, items: list[Any], kind: str, digest_id: int, now: datetime) -> Message:
        env = self.runtime.jinja
        variables = self.variables(batch, items, kind, digest_id, now)
        folder = f"{batch.settings.templates}/digest"
        try:
            html: str | None = render(env.get_template(f"{folder}/body.html"), variables)  # autoescaped: .html
        except jinja2.TemplateNotFound:
            html = None
        return Message(
            to=batch.assignee, subject=render(env.get_template(f"{folder}/subject.txt"), variables).strip(),
            text=render(env.get_template(f"{folder}/body.txt"), variables), html=html,
            idempotency_key=f"digest:{digest_id}", run_id=int(items[0].id), campaign_id=batch.campaign_id,
            at=now,  # dated at its first attempt, so a retry is the same message byte for byte
        )

    def _failed(self, batch: _Batch, items: list[Any], digest_id: int, attempt: int, error: str, temporary: bool,
                now: datetime) -> str:
        with writing(self.runtime.engine) as conn:
            if temporary:
                conn.execute(update(digests).where(digests.c.id == digest_id).values(
                    error=error, next_attempt_at=now + BACKOFF * 2 ** (attempt - 1)))
                log.warning("digest %s to %s: attempt %d failed, will retry: %s", digest_id, batch.assignee,
                            attempt, error)
                return "retrying"
            conn.execute(update(digests).where(digests.c.id == digest_id).values(
                status="failed", error=error, next_attempt_at=None))
            # Items asked for the first time never reached anyone: Message Delivery Failed. Items the approver
            # already had keep waiting; only their reminder was lost.
            for item in items:
                if item.notify == "request":
                    record_event(conn, int(item.id), "undeliverable", {"error": error}, source="digest", now=now)
            self._close(conn, items)
        log.warning("digest %s to %s failed: %s", digest_id, batch.assignee, error)
        return "failed"

    @staticmethod
    def _close(conn: Connection, items: list[Any]) -> None:
        """Clear the marks of the runs the digest listed (digest_items already names them)."""
        ids = [int(item.id) for item in items]
        # A run a worker holds right now keeps its mark and is listed again next time: at least once, never lost.
        conn.execute(update(runs).where(runs.c.id.in_(ids), runs.c.notify.is_not(None), runs.c.lease_owner.is_(None))
                     .values(notify=None))


def sample_digest_variables(settings: AccessReviewSettings, row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The variables of a digest listing one item of ``row`` (see DigestSender.variables), to check the digest's
    templates before any digest is sent."""
    s = settings
    link = LinkText("https://campaignkit.invalid/review/sample")
    return {
        "campaign": {"id": "", "name": ""}, "approver": str(row.get(s.approver_column) or ""),
        "items": [{"user": row.get(s.user_column, ""), "user_email": row.get(s.user_email_column, ""),
                   "application": row.get(s.application_column, ""), "new": True, "link": link}],
        "reminder": False, "review_all": link, "deadline": now + timedelta(days=DEFAULT_LINK_DAYS), "now": now,
    }
