"""Operations on access reviews: retrying the revocations that failed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from campaignkit.core.audit import Actor
from campaignkit.core.campaigns.retry import restart
from campaignkit.core.db.schema import runs

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime


def retry_enforcement(runtime: Runtime, campaign_id: str, actor: Actor) -> int:
    """Send every run whose enforcement failed back to its enforcement node; each retry is audited."""
    failed = select(runs.c.id, runs.c.context, runs.c.target_key).where(
        runs.c.campaign_id == campaign_id, runs.c.result == "Failure", runs.c.status == "completed")
    return restart(runtime, campaign_id, actor, failed, lambda run: "enforce",
                  lambda run: f"retry enforcement for {run.target_key} (run {run.id})")
