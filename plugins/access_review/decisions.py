"""Approver decisions: a signed link opens the item; only an explicit POST from its page decides, once, audited.

A link decides only for the recipient it was sent to and while the item's assignment is the one it was sent for:
once the item is escalated or handed over, the old link answers 410 and names nobody. Every decision is audited with
the link's recipient as the actor. A refused link goes to ``Rejections`` (coalesced per client, rate-limited).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from campaignkit.core.audit import Actor, AuditSubType, AuditType, record
from campaignkit.core.db import reading, writing
from campaignkit.core.db.schema import FINAL_STATUSES, campaign_versions, campaigns, digest_items, digests, events, runs
from campaignkit.core.engine.events import record_event, run_object
from campaignkit.core.errors import CampaignkitError
from campaignkit.core.web.links import LinkError, signer
from campaignkit.core.web.rejections import Rejections

from .links import DECISION, DIGEST, PAGE, recipient_tag
from .settings import AccessReviewSettings
from .vocabulary import DECISION_RECORDED, DECISION_REFUSED

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

CHOICES = {"approve": "approved", "revoke": "revoked"}
DECIDED = {"approved": "Approved", "revoked": "Revoked"}
PAGE_NONCE_LIFETIME = timedelta(hours=2)  # how long an opened decision page can still be submitted


class StalePage(CampaignkitError):
    """A decision posted without the nonce of a page rendered for its link (a forged form, a page hours old)."""


class ListChanged(CampaignkitError):
    """The items a review-all page showed are no longer the items it would decide: nothing was decided."""

    def __init__(self, view: ReviewAll) -> None:
        super().__init__("the list changed since the page was opened; nothing was decided")
        self.view = view


@dataclass(frozen=True)
class ReviewItem:
    run_id: int
    campaign: str
    user: str
    application: str
    approver: str | None  # the link's recipient
    decision: str | None  # Approved / Revoked once decided
    state: str | None  # why no decision can be recorded any more (Message Delivery Failed, Terminated, ...)
    nonce: str = ""  # carried by the page's forms into the POST

    @property
    def open(self) -> bool:
        return self.decision is None and self.state is None


@dataclass(frozen=True)
class ReviewAll:
    """One digest's items, as its approve-all / revoke-all page shows them to its recipient."""

    campaign: str
    approver: str
    items: list[ReviewItem]
    open: bool
    nonce: str = ""

    @property
    def pending(self) -> list[ReviewItem]:
        return [item for item in self.items if item.open]


class ReviewService:
    def __init__(self, runtime: Runtime, rejections: Rejections | None = None) -> None:
        self.runtime = runtime
        self.rejections = rejections or Rejections(runtime)

    # --- one item -------------------------------------------------------------------------------------------

    def open(self, token: str, client: str | None = None) -> ReviewItem:
        """The item a link points to, with the nonce its page posts back; a bad or stale link raises LinkError."""
        grant = self._grant(token, client)
        with self._audited(client), reading(self.runtime.engine) as conn:
            item = self._item(conn, grant)
        self._refuse_if_closed(item, client)
        return _with_nonce(item, self._nonce(token))

    def decide(self, token: str, choice: str, nonce: str, client: str | None = None) -> tuple[ReviewItem, bool]:
        """Record the recipient's decision; returns the item and whether this call decided it."""
        if choice not in CHOICES:
            raise CampaignkitError(f"unknown choice {choice!r}")
        grant = self._grant(token, client)
        page_ok = self._nonce_matches(token, nonce)
        with self._audited(client), writing(self.runtime.engine) as conn:
            _lock(conn, runs.c.id == grant.run_id)  # two simultaneous POSTs cannot both decide
            item = self._item(conn, grant)
            decided = item.open and page_ok
            if decided:
                self._record(conn, item, str(item.approver), choice, client, "review-link", "")
                item = self._item(conn, grant)
        if item.open and not page_ok:
            self._stale_page(client)
        if not decided:
            self._refuse_if_closed(item, client)  # a closed item raises; a replayed POST shows the decision
            self._refused(item, choice, client)
        return item, decided

    # --- a digest's items -----------------------------------------------------------------------------------

    def open_all(self, token: str, client: str | None = None) -> ReviewAll:
        digest_id, tag = self._digest_grant(token, client)
        with self._audited(client), reading(self.runtime.engine) as conn:
            view = self._all(conn, digest_id, tag)
        self._refuse_all_if_closed(view, digest_id, client)
        return _all_with_nonce(view, self._nonce(token))

    def decide_all(self, token: str, choice: str, nonce: str, shown: set[int],
                   client: str | None = None) -> tuple[ReviewAll, int]:
        """Decide exactly the items the page showed (``shown``), if they are still the ones pending; each is
        recorded and audited on its own. Raises ListChanged when the pending items differ from those shown."""
        if choice not in CHOICES:
            raise CampaignkitError(f"unknown choice {choice!r}")
        digest_id, tag = self._digest_grant(token, client)
        page_ok = self._nonce_matches(token, nonce)
        with self._audited(client), writing(self.runtime.engine) as conn:
            _lock(conn, runs.c.id.in_(select(digest_items.c.run_id).where(digest_items.c.digest_id == digest_id)))
            view = self._all(conn, digest_id, tag)
            pending = view.pending if page_ok else []
            if pending and {item.run_id for item in pending} != shown:
                raise ListChanged(_all_with_nonce(view, self._nonce(token)))
            for item in pending:
                self._record(conn, item, view.approver, choice, client, "review-all-link", " (all at once)")
            if pending:
                view = self._all(conn, digest_id, tag)
        if view.pending and not page_ok:
            self._stale_page(client)
        if not pending:
            self._refuse_all_if_closed(view, digest_id, client)
            self.rejections.reject(client, DECISION_REFUSED, "decision",
                                   f"{CHOICES[choice]} (all at once) refused: nothing pending in digest {digest_id}",
                                   user=view.approver, audit_type=AuditType.INTERACTION_EVENT)
        return view, len(pending)

    # --- shared ---------------------------------------------------------------------------------------------

    def _record(self, conn: Connection, item: ReviewItem, recipient: str, choice: str, client: str | None,
                source: str, how: str) -> None:
        now = self.runtime.clock.now()
        record_event(conn, item.run_id, CHOICES[choice], {"approver": recipient, "ip": client}, source=source,
                     now=now, sent_by=recipient)
        record(conn, actor=Actor(recipient, None, client), audit_type=AuditType.INTERACTION_EVENT,
               sub_type=DECISION_RECORDED, at=now, obj=run_object(conn, item.run_id), code=self,
               details=f"{CHOICES[choice]}{how}: {item.user} on {item.application} (run {item.run_id})")

    def _refuse_if_closed(self, item: ReviewItem, client: str | None) -> None:
        if item.state is None or item.decision is not None:
            return
        self._reject(client, f"item closed: {item.state} (run {item.run_id})")
        raise LinkError(f"this item is closed ({item.state}); no decision can be recorded", gone=True)

    def _refuse_all_if_closed(self, view: ReviewAll, digest_id: int, client: str | None) -> None:
        if view.open:
            return
        self._reject(client, f"review closed (digest {digest_id})")
        raise LinkError("this review has closed; no decision can be recorded", gone=True)

    def _refused(self, item: ReviewItem, choice: str, client: str | None) -> None:
        """A second decision on a decided item changes nothing, but who tried what, and when, is on the record."""
        self.rejections.reject(client, DECISION_REFUSED, "decision",
                               f"{CHOICES[choice]} refused: {item.user} on {item.application} is already "
                               f"{item.decision} (run {item.run_id})", user=item.approver or "anonymous",
                               audit_type=AuditType.INTERACTION_EVENT)

    @contextmanager
    def _audited(self, client: str | None) -> Iterator[None]:
        """A link found stale inside a transaction is audited after it rolled back (a second writer inside it
        would wait on SQLite's lock)."""
        try:
            yield
        except LinkError as exc:
            self._reject(client, str(exc))
            raise

    def _reject(self, client: str | None, reason: str) -> None:
        # The token itself is a credential: the record names the problem, never the token.
        self.rejections.reject(client, AuditSubType.LINK_REJECTED, "review link", reason)

    def _verified(self, purpose: str, token: str, client: str | None) -> dict[str, Any]:
        try:
            return signer(self.runtime).verify(purpose, token, self.runtime.clock.now())
        except LinkError as exc:
            self._reject(client, str(exc))
            raise
        except CampaignkitError:  # no secret_key configured: no link can be valid
            self._reject(client, "this link is not valid")
            raise LinkError("this link is not valid") from None

    def _grant(self, token: str, client: str | None) -> _Grant:
        payload = self._verified(DECISION, token, client)
        try:
            return _Grant(int(payload["run"]), str(payload["to"]), int(payload["a"]))
        except (KeyError, TypeError, ValueError):  # signed by us, but not a decision link of this release
            self._reject(client, "this link is not valid")
            raise LinkError("this link is not valid") from None

    def _digest_grant(self, token: str, client: str | None) -> tuple[int, str]:
        payload = self._verified(DIGEST, token, client)
        try:
            return int(payload["digest"]), str(payload["to"])
        except (KeyError, TypeError, ValueError):
            self._reject(client, "this link is not valid")
            raise LinkError("this link is not valid") from None

    def _nonce(self, token: str) -> str:
        """A token for the page's forms: proves the POST comes from a page we rendered for this link."""
        now = self.runtime.clock.now()
        return signer(self.runtime).sign(PAGE, {"link": _fingerprint(token)}, now + PAGE_NONCE_LIFETIME)

    def _nonce_matches(self, token: str, nonce: str) -> bool:
        try:
            return signer(self.runtime).verify(PAGE, nonce, self.runtime.clock.now()).get("link") == _fingerprint(token)
        except LinkError:
            return False

    def _stale_page(self, client: str | None) -> None:
        self._reject(client, "decision posted without a page of this link (missing or stale page nonce)")
        raise StalePage("this page is out of date: open the link from your email again, then decide")

    def _item(self, conn: Connection, grant: _Grant) -> ReviewItem:
        row = conn.execute(select(runs.c.id, runs.c.target, runs.c.assignee, runs.c.assignment, runs.c.response,
                                  runs.c.status, campaigns.c.name, campaigns.c.state, campaign_versions.c.definition)
                           .join(campaigns, campaigns.c.id == runs.c.campaign_id)
                           .join(campaign_versions, campaign_versions.c.id == runs.c.version_id)
                           .where(runs.c.id == grant.run_id)).first()
        if row is None:
            raise LinkError("this link is not valid")
        if recipient_tag(row.assignee or "") != grant.recipient or row.assignment != grant.assignment:
            # Escalated or handed over since the link was sent: it decides nothing, whoever holds it now.
            raise LinkError("this item was handed on to another approver; your link no longer decides it",
                            gone=True)
        return _review_item(row, row.name, row.state, row.assignee, _waiting_decisions(conn, [row.id]))

    def _all(self, conn: Connection, digest_id: int, tag: str) -> ReviewAll:
        head = conn.execute(select(campaigns.c.name, campaigns.c.state, digests.c.assignee)
                            .join(campaigns, campaigns.c.id == digests.c.campaign_id)
                            .where(digests.c.id == digest_id)).first()
        if head is None or recipient_tag(head.assignee) != tag:
            raise LinkError("this link is not valid")
        recipient = str(head.assignee)
        rows = conn.execute(select(runs.c.id, runs.c.target, runs.c.assignee, runs.c.assignment, runs.c.response,
                                   runs.c.status, campaign_versions.c.definition,
                                   digest_items.c.assignment.label("listed_assignment"))
                            .join(digest_items, digest_items.c.run_id == runs.c.id)
                            .join(campaign_versions, campaign_versions.c.id == runs.c.version_id)
                            .where(digest_items.c.digest_id == digest_id).order_by(runs.c.target_key)).all()
        waiting = _waiting_decisions(conn, [row.id for row in rows])
        items = []
        for row in rows:
            item = _review_item(row, head.name, head.state, recipient, waiting)
            if item.decision is None and (row.assignee != recipient or row.assignment != row.listed_assignment):
                item = _replace_state(item, "handed on to another approver")
            items.append(item)
        return ReviewAll(campaign=head.name, approver=recipient, items=items,
                         open=head.state not in ("terminated", "completed"))


@dataclass(frozen=True)
class _Grant:
    """What a decision link grants: one run, to one recipient (their tag), for one assignment of it."""

    run_id: int
    recipient: str  # recipient_tag of the address the link was sent to
    assignment: int


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _lock(conn: Connection, which: Any) -> None:
    """Row locks on PostgreSQL; SQLite's writer already holds the database lock (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(runs.c.id).where(which).with_for_update())


def _waiting_decisions(conn: Connection, run_ids: list[int]) -> dict[int, str]:
    """Decisions recorded through a link but not yet applied by a worker: already decided all the same."""
    if not run_ids:
        return {}
    return {row.run_id: row.name for row in conn.execute(
        select(events.c.run_id, events.c.name).where(events.c.run_id.in_(run_ids),
                                                     events.c.name.in_(CHOICES.values())))}


def _review_item(row: Any, campaign: str, campaign_state: str, recipient: str,
                 waiting: dict[int, str]) -> ReviewItem:
    settings = AccessReviewSettings.model_validate(row.definition.get("settings") or {})
    decision = row.response if row.response in DECIDED.values() else DECIDED.get(waiting.get(row.id, ""))
    state = None
    if decision is None:
        if row.status == "terminated" or campaign_state == "terminated":
            state = "Terminated"
        elif row.status in FINAL_STATUSES or campaign_state == "completed":
            state = row.response or ("failed" if row.status == "failed" else "closed without a decision")
    return ReviewItem(run_id=row.id, campaign=campaign, user=str(row.target.get(settings.user_column, "")),
                      application=str(row.target.get(settings.application_column, "")), approver=recipient,
                      decision=decision, state=state)


def _with_nonce(item: ReviewItem, nonce: str) -> ReviewItem:
    return ReviewItem(**{**item.__dict__, "nonce": nonce})


def _replace_state(item: ReviewItem, state: str) -> ReviewItem:
    return ReviewItem(**{**item.__dict__, "state": state})


def _all_with_nonce(view: ReviewAll, nonce: str) -> ReviewAll:
    return ReviewAll(campaign=view.campaign, approver=view.approver, items=view.items, open=view.open, nonce=nonce)
