"""Operations on access reviews: retrying the revocations that failed. The CLI (`access-review retry-enforcement`),
the console's Run History and the API (`POST /api/campaigns/{id}/retry-enforcement`) all call retry_enforcement."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from campaignkit.core import find_campaign
from campaignkit.core.audit import Actor
from campaignkit.core.campaigns.retry import restart
from campaignkit.core.db import reading
from campaignkit.core.db.schema import runs
from campaignkit.core.errors import InvalidState

from .kind import NAME

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime


def _failed(campaign_id: str, cycle: int | None) -> tuple[Any, ...]:
    """A run whose revocation failed: it ended at the workflow's ``failed`` node, which records Result Failure."""
    where = (runs.c.campaign_id == campaign_id, runs.c.result == "Failure", runs.c.status == "completed")
    return (*where, runs.c.launch_id == cycle) if cycle is not None else where


def failed_enforcements(runtime: Runtime, campaign_id: str, cycle: int | None = None) -> int:
    """How many runs of the access review (of one cycle, if given) retry_enforcement would send back."""
    campaign_id = find_campaign(runtime, campaign_id, kind=NAME).id
    with reading(runtime.engine) as conn:
        return int(conn.execute(select(func.count()).select_from(runs).where(*_failed(campaign_id, cycle)))
                   .scalar_one())


def retry_enforcement(runtime: Runtime, campaign_id: str, actor: Actor, *, cycle: int | None = None) -> int:
    """Send every run of the access review (of one cycle, if given) whose enforcement failed back to its enforcement
    node; each retry is audited as ``actor``. Another kind of campaign is NotFound: its workflow has no such node.
    A paused or terminated review is InvalidState: a retried run is due at once, and workers would revoke while
    the campaign is meant to stand still."""
    campaign = find_campaign(runtime, campaign_id, kind=NAME)
    if campaign.state in ("paused", "terminated"):
        hint = "resume it first" if campaign.state == "paused" else "its runs have ended"
        raise InvalidState(f"campaign {campaign.name!r} is {campaign.state}: {hint}")
    campaign_id = campaign.id
    failed = select(runs.c.id, runs.c.context, runs.c.target_key).where(*_failed(campaign_id, cycle))
    return restart(runtime, campaign_id, actor, failed, lambda run: "enforce",
                   lambda run: f"retry enforcement for {run.target_key} (run {run.id})")
