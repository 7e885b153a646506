"""The API's campaign operations: launch, pause, resume, terminate, as the token's account (write token of an
operator or admin: the gate in limits.py refuses the rest). The console does the same through the same function."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from ..audit import Actor
from ..campaigns.operations import ConfirmationNeeded, operate
from ..errors import NotFound
from ..runtime import Runtime
from .limits import client_ip


class LaunchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime | None = None  # later: schedule the first cycle; default: now, or the definition's schedule
    confirm: bool = False  # yes to what the campaign's kind asks before a launch (409 shows the question)


def api_campaigns_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api/campaigns/{campaign_id}")

    def run(request: Request, campaign_id: str, action: str, **options: Any) -> dict[str, Any]:
        principal = request.state.principal
        actor = Actor(principal.user_name, None, client_ip(request))
        try:
            outcome = operate(runtime, campaign_id, action, actor, **options)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except ConfirmationNeeded as exc:
            raise HTTPException(409, {"question": str(exc), "confirm": "send the request again with confirm: true"}) \
                from None
        return {"action": outcome.action, "message": outcome.message, "runs": outcome.runs}

    @router.post("/launch")
    def launch(campaign_id: str, request: Request, body: LaunchRequest | None = None) -> dict[str, Any]:
        body = body or LaunchRequest()
        return run(request, campaign_id, "launch", at=body.at, confirmed=body.confirm)

    @router.post("/pause")
    def pause(campaign_id: str, request: Request) -> dict[str, Any]:
        return run(request, campaign_id, "pause")

    @router.post("/resume")
    def resume(campaign_id: str, request: Request) -> dict[str, Any]:
        return run(request, campaign_id, "resume")

    @router.post("/terminate")
    def terminate(campaign_id: str, request: Request) -> dict[str, Any]:
        return run(request, campaign_id, "terminate")

    return router
