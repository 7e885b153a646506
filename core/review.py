"""Approver decisions: a signed link opens the item; only an explicit POST decides, once, audited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from .audit import Actor, AuditSubType, AuditType, record
from .db import reading, writing
from .errors import CampaignkitError
from .events import record_event, run_object
from .links import DECISION, DIGEST, LinkError, LinkSigner
from .presets import AccessReviewSettings
from .schema import campaign_versions, campaigns, events, launches, runs

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


@dataclass(frozen=True)
class ReviewAll:
    """One approver's items of one cycle, as the approve-all / revoke-all page shows them."""

    campaign: str
    approver: str
    items: list[ReviewItem]
    open: bool

    @property
    def pending(self) -> list[ReviewItem]:
        return [item for item in self.items if item.decision is None and item.open]


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
                       sub_type=AuditSubType.DECISION_RECORDED, at=now, obj=run_object(conn, run_id), code=self,
                       details=f"{CHOICES[choice]}: {item.user} on {item.application} (run {run_id})")
                return self._item(conn, run_id), True
        except _Closed as closed:
            self._refuse_if_closed(closed.item, client)  # audits and raises LinkError
            raise

    def open_all(self, token: str, client: str | None = None) -> ReviewAll:
        """The page of a digest's review-all link; a closed review is refused (and audited) like a single link."""
        launch_id, assignee = self._verify_all(token, client)
        with reading(self.runtime.engine) as conn:
            view = self._all(conn, launch_id, assignee)
        self._refuse_all_if_closed(view, launch_id, client)
        return view

    def decide_all(self, token: str, choice: str, client: str | None = None) -> tuple[ReviewAll, int]:
        """Decide every item still pending for this approver in this cycle; each is recorded and audited."""
        if choice not in CHOICES:
            raise CampaignkitError(f"unknown choice {choice!r}")
        launch_id, assignee = self._verify_all(token, client)
        now = self.runtime.clock.now()
        with writing(self.runtime.engine) as conn:
            if conn.dialect.name == "postgresql":  # two simultaneous POSTs must not both decide an item
                conn.execute(select(runs.c.id).where(runs.c.launch_id == launch_id, runs.c.assignee == assignee)
                             .with_for_update())
            view = self._all(conn, launch_id, assignee)
            pending = view.pending
            if not view.open and not pending:
                closed = view
            else:
                closed = None
                for item in pending:
                    record_event(conn, item.run_id, CHOICES[choice], {"approver": assignee, "ip": client},
                                 source="review-all-link", now=now)
                    record(conn, actor=Actor(assignee, None, client), audit_type=AuditType.INTERACTION_EVENT,
                           sub_type=AuditSubType.DECISION_RECORDED, at=now, obj=run_object(conn, item.run_id),
                           code=self, details=f"{CHOICES[choice]} (all at once): {item.user} on {item.application} "
                                              f"(run {item.run_id})")
                if pending:
                    view = self._all(conn, launch_id, assignee)
        if closed is not None:
            self._refuse_all_if_closed(closed, launch_id, client)
        return view, len(pending)

    def _all(self, conn: Any, launch_id: int, assignee: str) -> ReviewAll:
        head = conn.execute(select(campaigns.c.name, campaigns.c.state, campaign_versions.c.definition)
                            .join(launches, launches.c.campaign_id == campaigns.c.id)
                            .join(campaign_versions, campaign_versions.c.id == launches.c.version_id)
                            .where(launches.c.id == launch_id)).first()
        if head is None:
            raise LinkError("this link is not valid")
        settings = AccessReviewSettings.model_validate(head.definition.get("settings") or {})
        rows = conn.execute(select(runs.c.id, runs.c.target, runs.c.response, runs.c.status)
                            .where(runs.c.launch_id == launch_id, runs.c.assignee == assignee)
                            .order_by(runs.c.target_key)).all()
        # Decided through a link but not yet applied by a worker: already decided all the same.
        waiting = {row.run_id: row.name for row in conn.execute(
            select(events.c.run_id, events.c.name).where(events.c.run_id.in_([r.id for r in rows]),
                                                         events.c.name.in_(CHOICES.values())))}
        campaign_open = head.state not in ("terminated", "completed")
        items = []
        for row in rows:
            decision = row.response if row.response in ("Approved", "Revoked") else None
            decision = decision or {"approved": "Approved", "revoked": "Revoked"}.get(waiting.get(row.id, ""))
            items.append(ReviewItem(
                run_id=row.id, campaign=head.name, user=str(row.target.get(settings.user_column, "")),
                application=str(row.target.get(settings.application_column, "")), approver=assignee,
                decision=decision, open=campaign_open and row.status == "waiting" and row.response is None))
        return ReviewAll(campaign=head.name, approver=assignee, items=items, open=campaign_open)

    def _refuse_all_if_closed(self, view: ReviewAll, launch_id: int, client: str | None) -> None:
        if view.open:
            return
        self._reject(client, f"review closed (cycle {launch_id}, all items of one approver)")
        raise LinkError("this review has closed; no decision can be recorded")

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
        return int(self._payload(DECISION, token, client, lambda p: int(p["run"])))

    def _verify_all(self, token: str, client: str | None) -> tuple[int, str]:
        launch_id, assignee = self._payload(DIGEST, token, client, lambda p: (int(p["launch"]), str(p["assignee"])))
        return launch_id, assignee

    def _payload(self, purpose: str, token: str, client: str | None, read: Any) -> Any:
        secret = self.runtime.settings.secret_key
        try:
            if secret is None:
                raise LinkError("this link is not valid")
            return read(LinkSigner(secret.get_secret_value()).verify(purpose, token, self.runtime.clock.now()))
        except (LinkError, KeyError, TypeError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, LinkError) else "this link is not valid"
            self._reject(client, reason)
            raise LinkError(reason, expired=isinstance(exc, LinkError) and exc.expired) from None

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
