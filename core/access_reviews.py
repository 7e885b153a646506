"""Operations that belong to access reviews: the launch warning for revoking reviews, retrying enforcement."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from .audit import Actor, AuditSubType, AuditType, record
from .campaigns import Campaigns, audit_object
from .db import writing
from .engine import entering
from .launch import audience_targets
from .schema import campaigns, runs

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
        now = self.runtime.clock.now()
        definition, _, _ = self.campaigns.definition(campaign_id)
        with writing(self.runtime.engine) as conn:
            failed = conn.execute(select(runs.c.id, runs.c.context, runs.c.target_key).where(
                runs.c.campaign_id == campaign_id, runs.c.result == "Failure", runs.c.status == "completed")).all()
            for run in failed:
                # A new visit of the node: a new idempotency key, so the action really runs again.
                conn.execute(update(runs).where(runs.c.id == run.id).values(
                    status="active", current_node="enforce", context=entering(dict(run.context), "enforce"),
                    result=None, attempt=0, due_at=now, finished_at=None, updated_at=now,
                    lease_token=runs.c.lease_token + 1))
                record(conn, actor=actor, audit_type=AuditType.OPERATIONS, sub_type=AuditSubType.FORCE_WORKFLOW_STATUS,
                       at=now, obj=audit_object(campaign_id, definition), code=self,
                       details=f"retry enforcement for {run.target_key} (run {run.id})")
            if failed:
                conn.execute(update(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.state == "completed")
                             .values(state="in_progress", finished_at=None, updated_at=now))
        return len(failed)
