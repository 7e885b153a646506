"""The API's entries: a target enters a running journey (core/campaigns/entries.py), as the token's account (a
write token of an operator or admin: the gate in limits.py refuses the rest), audited as that person."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ..audit import Actor
from ..campaigns.entries import MAX_ATTRIBUTES, InvalidEntry, enter_target
from ..runtime import Runtime
from .limits import client_ip


class EntryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=300, description="The target's key, as the audience's key column "
                                                                "holds it.")
    attributes: dict[str, Any] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES,
                                       description="The target's attributes, as the columns of an audience row.")


def api_entries_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api/campaigns/{campaign_id}")

    @router.post("/entries", status_code=201)
    def enter(campaign_id: str, body: EntryRequest, request: Request, response: Response) -> dict[str, Any]:
        """Start a run for one target in a running campaign, unless its entry rules (``entry.again``) say no: 201
        with ``started: true`` and the run's id, or 200 with ``started: false``, the ``reason`` (in_journey,
        entered_before, too_soon), the run in the way and a ``message``. A draft, scheduled, paused or terminated
        campaign is 409; a key or attributes that cannot be stored, 422."""
        actor = Actor(request.state.principal.user_name, None, client_ip(request))
        try:
            outcome = enter_target(runtime, campaign_id, body.key, body.attributes, actor=actor, source="api")
        except InvalidEntry as exc:  # shaped like FastAPI's own 422
            raise HTTPException(422, [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]) from None
        if not outcome.started:
            response.status_code = 200
        return outcome.as_dict()

    return router
