"""The approvers' pages: a decision link's item, a digest's approve-all page, and their POSTs.

A GET shows and never decides (mail scanners open links); a POST decides only when it is a form from our own page
(review_forms) carrying that page's nonce. Every known outcome has its page and status: 404 for a link that was
never valid, 410 for one that was (expired, closed, handed on), 403/415/400 for a refused POST, 409 when a digest's
list changed; the service itself runs on a worker thread, off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from campaignkit.core.audit import AuditSubType
from campaignkit.core.web.forms import FormRefused, origin_of
from campaignkit.core.web.links import LinkError
from campaignkit.core.web.pages import render_page
from campaignkit.core.web.rejections import Rejections

from .decisions import ListChanged, ReviewService, StalePage
from .export import HistoryFilters
from .forms import DecisionForm, decision_form

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime


def review_router(runtime: Runtime, rejections: Rejections) -> APIRouter:
    router = APIRouter()
    reviews = ReviewService(runtime, rejections)
    own_origin = origin_of(runtime.settings.web.base_url)

    def link_error(exc: LinkError) -> HTMLResponse:
        return render_page(runtime, "link_error", 410 if exc.gone else 404, message=str(exc))

    async def decision(request: Request, decide: Callable[[DecisionForm, str | None], HTMLResponse]) -> HTMLResponse:
        """A POST's form checked, then ``decide`` run on a worker thread; every refusal has its page."""
        client = _client(request)
        try:
            form = await decision_form(request, own_origin)
        except FormRefused as refused:
            await run_in_threadpool(rejections.reject, client, AuditSubType.LINK_REJECTED, "review link",
                                    refused.reason)
            return render_page(runtime, "link_error", refused.status, message=str(refused))
        if form.choice is None:
            return render_page(runtime, "link_error", 400, message="choose approve or revoke")
        try:
            return await run_in_threadpool(decide, form, client)
        except LinkError as exc:
            return link_error(exc)
        except StalePage as exc:
            return render_page(runtime, "link_error", 400, message=str(exc))

    # Declared before /review/{token} so that "all" is never read as a token.
    @router.get("/review/all/{token}")
    def review_all_page(token: str, request: Request) -> HTMLResponse:
        try:
            view = reviews.open_all(token, _client(request))
        except LinkError as exc:
            return link_error(exc)
        return render_page(runtime, "review_all", view=view, action=f"/review/all/{token}")

    @router.post("/review/all/{token}")
    async def review_all_decide(token: str, request: Request) -> HTMLResponse:
        def decide(form: DecisionForm, client: str | None) -> HTMLResponse:
            try:
                view, decided = reviews.decide_all(token, str(form.choice), form.nonce, form.runs, client)
            except ListChanged as changed:
                return render_page(runtime, "review_all", 409, view=changed.view, action=f"/review/all/{token}",
                                   changed=True)
            return render_page(runtime, "review_all_done", view=view, decided=decided)

        return await decision(request, decide)

    @router.get("/review/{token}")
    def review_page(token: str, request: Request) -> HTMLResponse:
        try:
            item = reviews.open(token, _client(request))
        except LinkError as exc:
            return link_error(exc)
        return render_page(runtime, "review", item=item, action=f"/review/{token}")

    @router.post("/review/{token}")
    async def review_decide(token: str, request: Request) -> HTMLResponse:
        def decide(form: DecisionForm, client: str | None) -> HTMLResponse:
            item, decided = reviews.decide(token, str(form.choice), form.nonce, client)
            return render_page(runtime, "review_done", item=item, decided=decided)

        return await decision(request, decide)

    return router


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cycle: int | None = None  # only this launch (cycle); default: every cycle, as the CLI's retry-enforcement


def api_router(runtime: Runtime) -> APIRouter:
    """The review's run history, its CSV export and retrying failed enforcement, for the JSON API (behind its bearer
    token, like every /api route: reading for any account, the retry for a write token of an operator or admin)."""
    from campaignkit.core import Actor, find_campaign

    from .export import csv_download
    from .history import HistoryQuery, history_page, history_summary
    from .kind import NAME
    from .operations import retry_enforcement

    router = APIRouter()

    @router.get("/api/campaigns/{campaign_id}/history/export")
    def export(
        campaign_id: str,
        filters: Annotated[HistoryFilters, Depends()],
        fmt: Annotated[Literal["csv"], Query(alias="format")] = "csv",
    ) -> StreamingResponse:
        """Every row of the run history its filters select, as CSV (the console's Export and `history --format
        csv` write the same), streamed."""
        found = find_campaign(runtime, campaign_id, kind=NAME).id
        return csv_download(runtime, filters.query(found))

    @router.post("/api/campaigns/{campaign_id}/retry-enforcement")
    def retry(campaign_id: str, request: Request, body: RetryRequest | None = None) -> dict[str, Any]:
        """Send the runs whose enforcement failed back to it, audited as the token's account."""
        actor = Actor(request.state.principal.user_name, None, _client(request))
        cycle = body.cycle if body is not None else None
        return {"retried": retry_enforcement(runtime, campaign_id, actor, cycle=cycle), "cycle": cycle}

    @router.get("/api/campaigns/{campaign_id}/history")
    def history(
        campaign_id: str,
        status: str | None = None,
        result: str | None = None,
        approver: str | None = None,
        application: str | None = None,
        cycle: int | None = None,
        sort: str = "user",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        query = HistoryQuery(campaign_id, status=status, result=result, approver=approver, application=application,
                             cycle=cycle, sort=sort.lstrip("-"), descending=sort.startswith("-"), limit=limit,
                             offset=offset)
        return {"rows": history_page(runtime, query), "summary": history_summary(runtime, campaign_id, cycle)}

    return router
