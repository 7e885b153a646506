"""What people do to a simulation's results: resend the email to selected users, clear their campaign events, and
take an address off the bounced mailboxes. The CLI, the API and the console all call these; each change and its
audit record commit together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update

from campaignkit.core import find_campaign
from campaignkit.core.audit import Actor, AuditObject, record
from campaignkit.core.db import writing
from campaignkit.core.db.schema import FINAL_STATUSES, campaigns, events, phishing_results, runs
from campaignkit.core.engine.events import wake_waiting
from campaignkit.core.errors import CampaignkitError, InvalidState, NotFound

from . import store
from .kind import NAME
from .vocabulary import (
    AUDIT_SUB_TYPES,
    BOUNCED_MAILBOX_REMOVED,
    EVENTS_CLEARED,
    FILTERED,
    HIT_EVENTS,
    OPERATIONS,
    RESEND,
    RESEND_REQUESTED,
)

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

R = phishing_results.c
MAX_SELECTED = 100_000
NAMED_IN_AUDIT = 20  # users named in an audit record; the rest are counted


def _named(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:NAMED_IN_AUDIT])
    return shown + (f" and {len(keys) - NAMED_IN_AUDIT} more" if len(keys) > NAMED_IN_AUDIT else "")


def _selected(conn: Any, campaign_id: str, users: Sequence[str]) -> list[Any]:
    """The rows of ``users`` (their keys, i.e. addresses, case aside); an unknown one is an error naming it."""
    wanted = {user.strip().lower() for user in users if user.strip()}
    if not wanted:
        raise CampaignkitError("select at least one user")
    if len(wanted) > MAX_SELECTED:
        raise CampaignkitError(f"at most {MAX_SELECTED} users at once")
    rows = []
    wanted_list = sorted(wanted)
    for start in range(0, len(wanted_list), 500):
        rows += conn.execute(select(R.run_id, R.target_key, R.email, R.campaign_id).where(
            R.campaign_id == campaign_id, func.lower(R.target_key).in_(wanted_list[start:start + 500]))).all()
    found = {row.target_key.lower() for row in rows}
    missing = sorted(wanted - found)
    if missing:
        raise NotFound(f"not in this campaign: {_named(missing)}")
    return rows


def _audit(conn: Any, campaign: Any, actor: Actor, sub_type: str, details: str, at: Any, code: Any) -> None:
    assert sub_type in AUDIT_SUB_TYPES
    record(conn, actor=actor, audit_type=OPERATIONS, sub_type=sub_type, at=at,
           obj=AuditObject(campaign.id, campaign.name, campaign.folder), details=details, code=code)


def resend(runtime: Runtime, campaign_ref: str, users: Sequence[str], actor: Actor) -> dict[str, Any]:
    """Send the simulated email again to ``users``: each gets a new attempt under a new idempotency key (a new
    visit of the send step), sent even if the address is on the bounced mailboxes (a delivered resend takes it off).
    Users whose run has ended, or whose email has not gone out yet, are skipped and named."""
    campaign = find_campaign(runtime, campaign_ref, kind=NAME)
    if campaign.state in ("paused", "terminated"):
        raise InvalidState(f"campaign {campaign.name!r} is {campaign.state}; "
                           + ("resume it first" if campaign.state == "paused" else "its runs have ended"))
    now = runtime.clock.now()
    with writing(runtime.engine) as conn:
        rows = _selected(conn, campaign.id, users)
        status = dict(conn.execute(select(runs.c.id, runs.c.status).where(
            runs.c.id.in_([row.run_id for row in rows]))).all())
        sent = {row.run_id for row in conn.execute(select(R.run_id).where(
            R.run_id.in_([row.run_id for row in rows]), R.sent_at.is_not(None) | R.delivery.is_not(None)))}
        chosen = [row for row in rows if row.run_id in sent and status.get(row.run_id) not in FINAL_STATUSES]
        skipped = sorted(row.target_key for row in rows if row not in chosen)
        ids = [row.run_id for row in chosen]
        if ids:
            conn.execute(update(phishing_results).where(R.run_id.in_(ids)).values(
                attempt=R.attempt + 1, delivery=None, delivery_at=None, delivery_detail=None))
            conn.execute(insert(events), [{"run_id": run_id, "name": RESEND, "payload": {"by": actor.user_name},
                                           "source": "resend", "sent_by": actor.user_name, "created_at": now}
                                          for run_id in ids])
            wake_waiting(conn, runs.c.id.in_(ids), now)
            keys = sorted(row.target_key for row in chosen)
            _audit(conn, campaign, actor, RESEND_REQUESTED, f"resend to {len(ids)} user(s): {_named(keys)}"
                   + (f"; skipped {len(skipped)} (not sent yet or ended)" if skipped else ""), now, resend)
    return {"resent": len(ids), "skipped": skipped}


def clear_events(runtime: Runtime, campaign_ref: str, users: Sequence[str], actor: Actor) -> dict[str, Any]:
    """Remove the campaign events of ``users`` — opened, reported, clicked, entered credentials, training, and
    the scanner hits — keeping Email sent and its Delivery Status; their results go back accordingly."""
    campaign = find_campaign(runtime, campaign_ref, kind=NAME)
    now = runtime.clock.now()
    with writing(runtime.engine) as conn:
        rows = _selected(conn, campaign.id, users)
        ids = [row.run_id for row in rows]
        removed = 0
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            removed += conn.execute(delete(events).where(
                events.c.run_id.in_(part), events.c.name.in_([*HIT_EVENTS, FILTERED]))).rowcount or 0
            conn.execute(update(phishing_results).where(R.run_id.in_(part)).values(
                filtered_hits=0, **dict.fromkeys(HIT_EVENTS.values())))
        keys = sorted(row.target_key for row in rows)
        _audit(conn, campaign, actor, EVENTS_CLEARED,
               f"cleared {removed} event(s) of {len(ids)} user(s): {_named(keys)}", now, clear_events)
    return {"users": len(ids), "events": removed}


def remove_bounced(runtime: Runtime, address: str, actor: Actor) -> None:
    """Take ``address`` off the bounced mailboxes: later campaigns send to it again."""
    now = runtime.clock.now()
    with writing(runtime.engine) as conn:
        found = store.blocked(conn, address)
        if found is None:
            raise NotFound(f"{address.strip().lower()!r} is not on the bounced mailboxes")
        store.remove_bounced(conn, address)
        campaign = conn.execute(select(campaigns.c.id, campaigns.c.name, campaigns.c.folder)
                                .where(campaigns.c.id == found.campaign_id)).first()
        record(conn, actor=actor, audit_type=OPERATIONS, sub_type=BOUNCED_MAILBOX_REMOVED, at=now,
               obj=AuditObject(campaign.id, campaign.name, campaign.folder) if campaign else None,
               details=f"removed {found.address} ({found.code} {found.error[:200]}; bounced first "
                       f"{found.first_seen.isoformat()}, last {found.last_seen.isoformat()})", code=remove_bounced)
