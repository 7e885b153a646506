"""The web app (FastAPI): health, and a JSON API for people who run campaigns, behind a bearer token."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from .audit import Actor, AuditSubType, AuditType, record
from .db import writing
from .errors import CampaignkitError, InvalidState, NotFound
from .events import send_event
from .history import HistoryQuery, history_page, history_summary
from .links import LinkError
from .migrate import current_revision, head_revision
from .queries import RunQuery, campaign_summary, list_campaigns, list_runs, run_timeline
from .review import CHOICES, ReviewService
from .runtime import Runtime

log = logging.getLogger(__name__)


class EventIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    payload: dict[str, Any] = Field(default_factory=dict)


PAGE_HEADERS = {
    # Decision links are credentials: never leak them through Referer, caches or frames.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="campaignkit", docs_url=None, redoc_url=None)
    reviews = ReviewService(runtime)

    def page(name: str, status: int = 200, **variables: Any) -> HTMLResponse:
        html = runtime.pages.get_template(f"pages/{name}.html").render(**variables)
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

    def link_error(exc: LinkError) -> HTMLResponse:
        return page("link_error", 410 if exc.expired or "closed" in str(exc) else 404, message=str(exc))

    # Declared before /review/{token} so that "all" is never read as a token.
    @app.get("/review/all/{token}")
    def review_all_page(token: str, request: Request) -> HTMLResponse:
        try:
            view = reviews.open_all(token, _client(request))
        except LinkError as exc:
            return link_error(exc)
        return page("review_all", view=view, action=f"/review/all/{token}")

    @app.post("/review/all/{token}")
    async def review_all_decide(token: str, request: Request) -> HTMLResponse:
        choice = await _posted_choice(request)
        if choice is None:
            return page("link_error", 400, message="choose approve or revoke")
        try:
            view, decided = reviews.decide_all(token, choice, _client(request))
        except LinkError as exc:
            return link_error(exc)
        return page("review_all_done", view=view, decided=decided)

    @app.get("/review/{token}")
    def review_page(token: str, request: Request) -> HTMLResponse:
        try:
            item = reviews.open(token, _client(request))
        except LinkError as exc:
            return link_error(exc)
        return page("review", item=item, action=f"/review/{token}")

    @app.post("/review/{token}")
    async def review_decide(token: str, request: Request) -> HTMLResponse:
        choice = await _posted_choice(request)
        if choice is None:
            return page("link_error", 400, message="choose approve or revoke")
        try:
            item, decided = reviews.decide(token, choice, _client(request))
        except LinkError as exc:
            return link_error(exc)
        return page("review_done", item=item, decided=decided)

    def authorised(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
        token = runtime.settings.api_token
        if token is None:
            raise HTTPException(503, "the API is disabled: set api_token (campaignkit init creates one)")
        expected = f"Bearer {token.get_secret_value()}"
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
            # A refused credential is a failed log-in; accepted calls are not audited one by one. What was sent is
            # itself a credential, perhaps a real one mistyped: the record names the problem, never the value.
            reason = "no Authorization header" if authorization is None else "wrong bearer token"
            with writing(runtime.engine) as conn:
                record(conn, actor=Actor("anonymous", None, _client(request)), audit_type=AuditType.SYSTEM_ACCESS,
                       sub_type=AuditSubType.LOGIN_FAILED, at=runtime.clock.now(),
                       details=f"API token rejected ({reason}): {request.method} {request.url.path}")
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})

    api = [Depends(authorised)]

    @app.get("/health")
    def health() -> JSONResponse:
        # 503 unless the database answers and its schema is current, so a load balancer or `make run` can wait on it.
        try:
            revision = current_revision(runtime.engine)
        except SQLAlchemyError as exc:
            log.warning("health check: database unavailable: %s", type(exc).__name__)
            return JSONResponse({"status": "database unavailable", "revision": None}, status_code=503)
        head = head_revision()
        if revision != head:
            return JSONResponse({"status": "migrations pending", "revision": revision, "head": head}, status_code=503)
        return JSONResponse({"status": "ok", "revision": revision})

    @app.get("/api/campaigns", dependencies=api)
    def campaigns() -> list[dict[str, Any]]:
        return list_campaigns(runtime)

    @app.get("/api/campaigns/{campaign_id}", dependencies=api)
    def campaign(campaign_id: str) -> dict[str, Any]:
        return _or_404(lambda: campaign_summary(runtime, campaign_id))

    @app.get("/api/campaigns/{campaign_id}/runs", dependencies=api)
    def runs(
        campaign_id: str,
        status: str | None = None,
        search: str | None = None,
        cycle: int | None = None,
        sort: str = "id",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        query = RunQuery(campaign_id, status=status, search=search, cycle=cycle, sort=sort.lstrip("-"),
                         descending=sort.startswith("-"), limit=limit, offset=offset)
        return _or_404(lambda: list_runs(runtime, query))

    @app.get("/api/campaigns/{campaign_id}/history", dependencies=api)
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
        return {"rows": _or_404(lambda: history_page(runtime, query)),
                "summary": _or_404(lambda: history_summary(runtime, campaign_id, cycle))}

    @app.get("/api/runs/{run_id}", dependencies=api)
    def run(run_id: int) -> dict[str, Any]:
        return _or_404(lambda: run_timeline(runtime, run_id))

    @app.post("/api/runs/{run_id}/events", dependencies=api, status_code=201)
    def event(run_id: int, body: EventIn, request: Request) -> dict[str, Any]:
        # One bearer token and no user accounts: the API caller is "api", from its client address.
        sender = Actor("api", None, _client(request))
        event_id = _or_404(lambda: send_event(runtime, run_id, body.name, body.payload, source="api", actor=sender))
        return {"event_id": event_id}

    return app


async def _posted_choice(request: Request) -> str | None:
    """The button an approver pressed (a plain form POST), or None for anything else."""
    choice = parse_qs((await request.body()).decode(errors="replace")).get("choice", [""])[0]
    return choice if choice in CHOICES else None


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _or_404(call: Any) -> Any:
    try:
        return call()
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except InvalidState as exc:
        raise HTTPException(409, str(exc)) from None
    except CampaignkitError as exc:
        raise HTTPException(400, str(exc)) from None
