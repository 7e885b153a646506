"""Operations that belong to access reviews: the launch warning for revoking reviews, retrying enforcement."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from .audit import Actor
from .campaigns import Campaigns
from .launch import audience_targets
from .retry import restart
from .schema import runs

if TYPE_CHECKING:
    from .runtime import Runtime


class AccessReviews:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.campaigns = Campaigns(runtime)

    def revocations_at_deadline(self, campaign_id: str, audience: Path | None = None) -> int:
        """How many accesses a launch could remove unanswered (if_no_response: revoke); 0 for other campaigns."""
        definition, _, base_dir = self.campaigns.definition(campaign_id)
        if definition.kind != "access_review" or definition.settings.get("if_no_response") != "revoke":
            return 0
        return len({t.key for t in audience_targets(self.runtime, definition, base_dir, audience)})

    def retry_enforcement(self, campaign_id: str, actor: Actor) -> int:
        """Send every run whose enforcement failed back to its enforcement node; each retry is audited."""
        failed = select(runs.c.id, runs.c.context, runs.c.target_key).where(
            runs.c.campaign_id == campaign_id, runs.c.result == "Failure", runs.c.status == "completed")
        return restart(self.runtime, campaign_id, actor, failed, lambda run: "enforce",
                       lambda run: f"retry enforcement for {run.target_key} (run {run.id})")
