"""Retrying failed runs from the console: a page that says which runs a selection picks (status, node, error text)
and what a retry does, then a same-origin form with the session's CSRF token; operators and admins only, done
through the same functions as the CLI and the API (campaigns/retry.py), each retry audited as the person."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...accounts.sessions import Session
from ...campaigns.queries import campaign_summary
from ...campaigns.retry import FAILED, RetrySelection, retry_preview, retry_runs
from ...errors import CampaignkitError, InvalidState, NotFound
from ..forms import form_value
from . import Console
from .actions import operator_refusal

Text = Annotated[str, Query(max_length=500)]


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    def refused(session: Session, exc: CampaignkitError) -> Response:
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, InvalidState) else 400
        return console.render("message", status, session=session, message=str(exc))

    @routes.get("/campaigns/{campaign_id}/retry")
    def preview(request: Request, campaign_id: str, status: Text = FAILED, node: Text = "", error: Text = "",
                ) -> Response:
        def render(session: Session) -> Response:
            refusal = operator_refusal(session)
            if refusal is not None:
                return console.render("message", 403, session=session, message=refusal)
            selection = RetrySelection(status=status, node=node or None, error=error or None)
            try:
                summary = campaign_summary(console.runtime, campaign_id)
                found = retry_preview(console.runtime, campaign_id, selection)
            except CampaignkitError as exc:
                return refused(session, exc)
            kind = console.runtime.kinds.get(summary["kind"])
            points = {FAILED: "runs whose step failed", **{name: point.description for name, point in
                                                          (kind.retry_points.items() if kind else ())}}
            return console.render("retry", session=session, campaign=summary, selection=selection, found=found,
                                  points=points)

        return console.page(request, render)

    @routes.post("/campaigns/{campaign_id}/retry")
    async def retry(request: Request, campaign_id: str) -> Response:
        posted = await console.posted(request, operator_refusal)
        if isinstance(posted, Response):
            return posted
        session, fields = posted
        selection = RetrySelection(status=form_value(fields, "status") or FAILED,
                                   node=form_value(fields, "node") or None, error=form_value(fields, "error") or None)
        try:
            await run_in_threadpool(partial(retry_runs, console.runtime, campaign_id,
                                            console.actor(session, request), selection))
        except CampaignkitError as exc:
            return refused(session, exc)
        return RedirectResponse(f"/campaigns/{campaign_id}?done=retried", 303)

    return routes
