"""Approver decisions: a signed link opens the item; only an explicit POST decides, once, audited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from .audit import Actor, AuditObject, AuditSubType, AuditType, record
from .db import reading, writing
from .errors import CampaignkitError
from .events import record_event
from .links import DECISION, LinkError, LinkSigner
from .presets import AccessReviewSettings
from .schema import campaign_versions, campaigns, events, runs

if TYPE_CHECKING:
    from .runtime import Runtime

CHOICES = {"approve": "approved", "revoke": "revoked"}


class _Closed(Exception):
    def __init__(self, item: ReviewItem) -> None:
        self.item = item


@dataclass(frozen=True)
class ReviewItem:
    run_id: int
    campaign: str
    user: str
    application: str
    approver: str | None
    decision: str | None  # Approved / Revoked once decided
    open: bool  # the campaign still takes decisions


class ReviewService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def open(self, token: str, client: str | None = None) -> ReviewItem:
        """The item a link points to; a bad link raises LinkError and is audited."""
        run_id = self._verify(token, client)
        with reading(self.runtime.engine) as conn:
            item = self._item(conn, run_id)
        self._refuse_if_closed(item, client)
        return item

    def decide(self, token: str, choice: str, client: str | None = None) -> tuple[ReviewItem, bool]:
        """Record the approver's decision; returns the item and whether this call decided it."""
        if choice not in CHOICES:
            raise CampaignkitError(f"unknown choice {choice!r}")
        run_id = self._verify(token, client)
        now = self.runtime.clock.now()
        try:
            with writing(self.runtime.engine) as conn:
                # Lock the run so that two simultaneous POSTs cannot both decide.
                lock = select(runs.c.id).where(runs.c.id == run_id)
                if conn.dialect.name == "postgresql":
                    lock = lock.with_for_update()
                conn.execute(lock)
                item = self._item(conn, run_id)
                if item.decision is not None:
                    return item, False  # a replayed or second POST shows the decision and changes nothing
                if not item.open:
                    raise _Closed(item)
                approver = item.approver or "unknown approver"
                record_event(conn, run_id, CHOICES[choice], {"approver": approver, "ip": client},
                             source="review-link", now=now)
                record(conn, actor=Actor(approver, None, client), audit_type=AuditType.INTERACTION_EVENT,
                       sub_type=AuditSubType.DECISION_RECORDED, at=now, obj=self._object(conn, run_id), code=self,
                       details=f"{CHOICES[choice]}: {item.user} on {item.application} (run {run_id})")
                return self._item(conn, run_id), True
        except _Closed as closed:
            self._refuse_if_closed(closed.item, client)  # audits and raises LinkError
            raise

    def _refuse_if_closed(self, item: ReviewItem, client: str | None) -> None:
        if item.open or item.decision is not None:
            return
        self._reject(client, f"review closed (run {item.run_id})")
        raise LinkError("this review has closed; no decision can be recorded")

    def _reject(self, client: str | None, reason: str) -> None:
        with writing(self.runtime.engine) as conn:
            # The token itself is a credential: the record names the problem, never the token.
            record(conn, actor=Actor("anonymous", None, client), audit_type=AuditType.SECURITY,
                   sub_type=AuditSubType.LINK_REJECTED, at=self.runtime.clock.now(), code=self,
                   details=f"review link rejected: {reason}")

    def _verify(self, token: str, client: str | None) -> int:
        secret = self.runtime.settings.secret_key
        try:
            if secret is None:
                raise LinkError("this link is not valid")
            payload = LinkSigner(secret.get_secret_value()).verify(DECISION, token, self.runtime.clock.now())
            run_id = int(payload["run"])
        except (LinkError, KeyError, TypeError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, LinkError) else "this link is not valid"
            self._reject(client, reason)
            raise LinkError(reason, expired=isinstance(exc, LinkError) and exc.expired) from None
        return run_id

    def _item(self, conn: Any, run_id: int) -> ReviewItem:
        row = conn.execute(select(runs.c.id, runs.c.target, runs.c.assignee, runs.c.response, runs.c.status,
                                  campaigns.c.name, campaigns.c.state, campaign_versions.c.definition)
                           .join(campaigns, campaigns.c.id == runs.c.campaign_id)
                           .join(campaign_versions, campaign_versions.c.id == runs.c.version_id)
                           .where(runs.c.id == run_id)).first()
        if row is None:
            raise LinkError("this link is not valid")
        settings = AccessReviewSettings.model_validate(row.definition.get("settings") or {})
        decision = row.response if row.response in ("Approved", "Revoked") else None
        if decision is None:  # decided, but the worker has not applied it yet
            pending = conn.execute(select(events.c.name).where(events.c.run_id == run_id,
                                                               events.c.name.in_(CHOICES.values()))).scalar()
            decision = {"approved": "Approved", "revoked": "Revoked"}.get(pending or "")
        return ReviewItem(run_id=row.id, campaign=row.name, user=str(row.target.get(settings.user_column, "")),
                          application=str(row.target.get(settings.application_column, "")),
                          approver=row.assignee, decision=decision,
                          open=row.state not in ("terminated", "completed") and row.status != "terminated")

    @staticmethod
    def _object(conn: Any, run_id: int) -> AuditObject:
        row = conn.execute(select(campaigns.c.id, campaigns.c.name, campaigns.c.folder, campaign_versions.c.major,
                                  campaign_versions.c.minor)
                           .join(runs, runs.c.campaign_id == campaigns.c.id)
                           .join(campaign_versions, campaign_versions.c.id == runs.c.version_id)
                           .where(runs.c.id == run_id)).one()
        return AuditObject(row.id, row.name, row.folder, (row.major, row.minor))
