"""What people do to a campaign from the API and the console, in one place so that both behave alike: launch (with
the confirmation its kind may ask for), pause, resume, terminate. Each is audited as the person, by the service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import InvalidState
from .service import Campaigns

if TYPE_CHECKING:
    from ..audit import Actor
    from ..runtime import Runtime

ACTIONS = ("launch", "pause", "resume", "terminate")


class ConfirmationNeeded(InvalidState):
    """The campaign's kind wants this launch confirmed (an access review that may revoke unanswered access)."""


@dataclass(frozen=True)
class Outcome:
    action: str
    message: str  # one line for people
    runs: int  # runs launched, parked, released or ended


def operate(runtime: Runtime, campaign_id: str, action: str, actor: Actor, *, at: datetime | None = None,
            confirmed: bool = False) -> Outcome:
    """Do ``action`` (one of ACTIONS) to a campaign as ``actor``; CampaignkitError (NotFound, InvalidState,
    ConfirmationNeeded, AudienceError) for what cannot be done, and nothing is then changed."""
    campaigns = Campaigns(runtime)
    name = campaigns.get(campaign_id)["name"]
    if action == "launch":
        question = campaigns.launch_question(campaign_id)
        if question and not confirmed:
            raise ConfirmationNeeded(question)
        result = campaigns.launch(campaign_id, actor, at=at)
        if result.status == "scheduled":
            return Outcome(action, f"{name!r} is scheduled for {result.cycle_at:%Y-%m-%d %H:%M} UTC", 0)
        skipped = f"; {result.summary}" if result.summary else ""
        return Outcome(action, f"{name!r} launched: {result.target_count} run(s){skipped}", result.target_count)
    if action == "pause":
        count = campaigns.pause(campaign_id, actor)
        return Outcome(action, f"{name!r} paused: {count} run(s) parked", count)
    if action == "resume":
        count = campaigns.resume(campaign_id, actor)
        return Outcome(action, f"{name!r} resumed: {count} run(s) released", count)
    if action == "terminate":
        count = campaigns.terminate(campaign_id, actor)
        return Outcome(action, f"{name!r} terminated: {count} run(s) ended", count)
    raise InvalidState(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
