"""Operations on access reviews: retrying the revocations that failed. The CLI (`access-review retry-enforcement`),
the console's Run History and the API (`POST /api/campaigns/{id}/retry-enforcement`) all call retry_enforcement."""

from __future__ import annotations

from typing import TYPE_CHECKING

from campaignkit.core.audit import Actor
from campaignkit.core.campaigns.retry import RetrySelection, retry_preview, retry_runs

from .kind import ENFORCEMENT_FAILED, NAME

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime


def failed_enforcements(runtime: Runtime, campaign_id: str, cycle: int | None = None) -> int:
    """How many runs of the access review (of one cycle, if given) retry_enforcement would send back."""
    return retry_preview(runtime, campaign_id, RetrySelection(status=ENFORCEMENT_FAILED, cycle=cycle), kind=NAME).runs


def retry_enforcement(runtime: Runtime, campaign_id: str, actor: Actor, *, cycle: int | None = None) -> int:
    """Send every run of the access review (of one cycle, if given) whose enforcement failed back to its enforcement
    node; each retry is audited as ``actor``: core's retry of the kind's ``enforcement-failed`` retry point. Another
    kind of campaign is NotFound; a paused or terminated review is InvalidState."""
    return retry_runs(runtime, campaign_id, actor, RetrySelection(status=ENFORCEMENT_FAILED, cycle=cycle),
                      kind=NAME).runs
