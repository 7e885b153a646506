"""The API's retry: failed runs (or a kind's retry point) back to their node, as the token's account (a write token
of an operator or admin: the gate in limits.py refuses the rest); ``dry_run`` says which, changing nothing. The CLI
and the console's Retry page call the same functions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ..audit import Actor
from ..campaigns.retry import FAILED, RetrySelection, retry_preview, retry_runs
from ..runtime import Runtime
from .limits import client_ip


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = Field(default=FAILED, max_length=100, description="failed, or a retry point of the campaign's kind")
    node: str | None = Field(default=None, max_length=100, description="only runs that stopped at this node")
    error: str | None = Field(default=None, max_length=500, description="only runs whose error contains this text")
    runs: list[int] = Field(default_factory=list, max_length=10_000, description="only these runs")
    cycle: int | None = Field(default=None, description="only runs of this cycle (launch id)")
    dry_run: bool = Field(default=False, description="say which runs, change nothing")


def api_retry_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api/campaigns/{campaign_id}")

    @router.post("/retry")
    def retry(campaign_id: str, request: Request, body: RetryRequest | None = None) -> dict[str, Any]:
        """Send the campaign's failed runs (those the body selects) back to the node where they failed, each as a
        new visit with a new idempotency key and its own audit record; with ``dry_run``, how many and the first
        20, nothing changed. 409 while the campaign is paused or terminated."""
        body = body or RetryRequest()
        selection = RetrySelection(status=body.status, node=body.node, error=body.error, run_ids=tuple(body.runs),
                                   cycle=body.cycle)
        if body.dry_run:
            outcome = retry_preview(runtime, campaign_id, selection)
            return {"would_retry": outcome.runs, "runs": outcome.sample}
        principal = request.state.principal
        outcome = retry_runs(runtime, campaign_id, Actor(principal.user_name, None, client_ip(request)), selection)
        return {"retried": outcome.runs, "runs": outcome.sample}

    return router
