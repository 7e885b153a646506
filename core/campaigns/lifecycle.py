"""Ending and pausing a campaign: terminate ends every unfinished run; pause parks them where they are, resume
releases them. A mixin of Campaigns (service.py), whose lookups it uses."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, exists, func, select, update

from ..audit import Actor, AuditObject, AuditSubType, AuditType, record
from ..db import reading, writing
from ..db.schema import LIVE_STATUSES, campaigns, launches, runs
from ..definitions.workflow import CampaignDefinition
from ..errors import InvalidState

if TYPE_CHECKING:
    from ..runtime import Runtime


class Lifecycle(ABC):
    runtime: Runtime

    # Campaigns' own lookups (service.py), which these operations use.
    @abstractmethod
    def definition(self, campaign_id: str) -> tuple[CampaignDefinition, int, Any]:
        """The campaign's current definition, its version id and the folder its file was in."""

    @abstractmethod
    def get(self, campaign_id: str) -> dict[str, Any]:
        """The campaign's row."""

    @staticmethod
    @abstractmethod
    def _get(conn: Connection, campaign_id: str) -> Any:
        """The campaign's row on ``conn``; NotFound when there is none."""

    # --- ending -------------------------------------------------------------------------------------

    def terminate(self, campaign_id: str, actor: Actor) -> int:
        """End every unfinished run as terminated and cancel scheduled launches; returns how many runs ended."""
        now = self.runtime.clock.now()
        definition, _, _ = self.definition(campaign_id)
        with writing(self.runtime.engine) as conn:
            campaign = self._get(conn, campaign_id)
            if campaign.state in ("terminated", "completed", "draft"):
                raise InvalidState(f"campaign {campaign.name!r} is {campaign.state}; nothing to terminate")
            # Scheduled and paused cycles are cancelled below; paused runs end like the rest.
            # Bumping the lease token makes a worker holding any of these runs drop its results.
            ended = conn.execute(update(runs).where(runs.c.campaign_id == campaign_id,
                                                    runs.c.status.in_(LIVE_STATUSES)).values(
                status="terminated", due_at=None, paused_due_at=None, lease_owner=None,
                lease_token=runs.c.lease_token + 1, response=func.coalesce(runs.c.response, "Terminated"),
                finished_at=now, updated_at=now).returning(runs.c.id, runs.c.target_key, runs.c.current_node)
            ).all()
            conn.execute(update(launches).where(launches.c.campaign_id == campaign_id,
                                                launches.c.status.in_(("scheduled", "paused")))
                         .values(status="cancelled"))
            conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(
                state="terminated", finished_at=now, updated_at=now))
            record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT,
                   sub_type=AuditSubType.WORKFLOW_TERMINATION_REQUEST, at=now,
                   obj=audit_object(campaign_id, definition),
                   code=self, details=f"{len(ended)} unfinished run(s) terminated")
        for run in ended:
            self.runtime.notify("on_run_finished", run={
                "id": run.id, "campaign_id": campaign_id, "target_key": run.target_key, "status": "terminated",
                "current_node": run.current_node, "error": None})
        self.runtime.notify("on_campaign_finished", campaign=self.get(campaign_id), state="terminated")
        return len(ended)

    # --- pausing ------------------------------------------------------------------------------------

    def pause(self, campaign_id: str, actor: Actor) -> int:
        """Stop the campaign's schedule and its unfinished runs; returns how many runs were parked."""
        return self._set_paused(campaign_id, actor, pause=True)

    def resume(self, campaign_id: str, actor: Actor) -> int:
        """Restart the schedule and the parked runs where they were; returns how many runs were released."""
        return self._set_paused(campaign_id, actor, pause=False)

    def _set_paused(self, campaign_id: str, actor: Actor, *, pause: bool) -> int:
        now = self.runtime.clock.now()
        definition, _, _ = self.definition(campaign_id)
        with writing(self.runtime.engine) as conn:
            campaign = self._get(conn, campaign_id)
            allowed = ("scheduled", "in_progress") if pause else ("paused",)
            if campaign.state not in allowed:
                verb = "paused" if pause else "resumed"
                raise InvalidState(f"campaign {campaign.name!r} is {campaign.state}; it cannot be {verb}")
            live = (runs.c.campaign_id == campaign_id, runs.c.status.in_(LIVE_STATUSES))
            if pause:
                # The token bump makes a worker holding any of these runs drop its results; nothing is lost,
                # the run resumes from the node it was on.
                moved = conn.execute(update(runs).where(*live).values(
                    paused_due_at=runs.c.due_at, due_at=None, lease_owner=None,
                    lease_token=runs.c.lease_token + 1)).rowcount
                launch_from, launch_to, state = "scheduled", "paused", "paused"
            else:
                moved = conn.execute(update(runs).where(*live).values(
                    due_at=runs.c.paused_due_at, paused_due_at=None)).rowcount
                launch_from, launch_to = "paused", "scheduled"
                has_runs = conn.execute(select(exists().where(*live))).scalar()
                state = "in_progress" if has_runs else "scheduled"
            conn.execute(update(launches).where(launches.c.campaign_id == campaign_id,
                                                launches.c.status == launch_from).values(status=launch_to))
            conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(state=state, updated_at=now))
            record(conn, actor=actor, audit_type=AuditType.INTERACTION_EVENT,
                   sub_type=AuditSubType.WORKFLOW_PAUSE_REQUEST if pause else AuditSubType.WORKFLOW_RESUME_REQUEST,
                   at=now,
                   obj=audit_object(campaign_id, definition), code=self,
                   details=f"{moved} unfinished run(s) {'parked' if pause else 'released'}")
        return int(moved)

    def live_runs(self, campaign_id: str) -> int:
        with reading(self.runtime.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(runs).where(
                runs.c.campaign_id == campaign_id, runs.c.status.in_(LIVE_STATUSES))).scalar_one())


def audit_object(campaign_id: str, definition: CampaignDefinition) -> AuditObject:
    return AuditObject(campaign_id, definition.name, definition.folder, definition.version_tuple)
