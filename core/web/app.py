"""The web app (FastAPI): health, and a JSON API for people who run campaigns, behind a bearer token."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..accounts.roles import Principal, Role, Scope
from ..accounts.tokens import Tokens
from ..audit import Actor
from ..campaigns.queries import RunQuery, campaign_summary, contact, list_campaigns, list_runs, run_timeline
from ..db.migrate import current_revision, head_revision
from ..db.schema import UTCDateTime
from ..engine.events import EventInput, InvalidEvent, send_event
from ..errors import CampaignkitError, InvalidState, NotFound
from ..kinds import WebContext
from ..runtime import Runtime
from .api_audit import api_audit_router
from .api_campaigns import api_campaigns_router
from .api_definitions import api_definitions_router
from .api_entries import api_entries_router
from .api_operations import api_operations_router
from .api_reporting import api_reporting_router
from .api_retry import api_retry_router
from .api_simulate import api_simulate_router
from .console import Console, console_router
from .console.api_docs import API_DOCS
from .console.gate import KindConsole
from .cursors import Cursors, next_link
from .limits import BearerTokenGate, BodyLimit, HeaderLimit, RejectionRecorder, body_limit, client_ip, is_api
from .link_routes import LinkRoutes, link_app
from .pages import render_page
from .rejections import Rejections, Throttle, flushing

log = logging.getLogger(__name__)
SHARED_TOKEN_USER = "api"  # who the deprecated shared api_token reads as


def bearer_authenticator(runtime: Runtime) -> Callable[[str], Principal | None]:
    """A personal token's account; or, if one is configured, the deprecated shared ``api_token``, which reads only."""
    tokens = Tokens(runtime)
    shared = runtime.settings.api_token
    shared_bytes = shared.get_secret_value().encode() if shared is not None else None

    def authenticate(token: str) -> Principal | None:
        if shared_bytes is not None and hmac.compare_digest(token.encode("utf-8", "surrogatepass"), shared_bytes):
            return Principal(SHARED_TOKEN_USER, Role.AUDITOR, Scope.READ)
        return tokens.authenticate(token)

    return authenticate


def create_app(runtime: Runtime, on_api_rejected: RejectionRecorder | None = None) -> FastAPI:
    """The app; ``on_api_rejected`` is told of each refused API credential (default: a Login Failed audit record,
    coalesced per client with the refused links, see Rejections)."""
    web = runtime.settings.web
    rejections = Rejections(runtime)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with flushing(rejections):
            yield

    app = FastAPI(title="campaignkit", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.web_settings = web  # for whoever serves the app: core.web_transport.uvicorn_config(app, web)
    # The kinds' routers: recipients' pages, tracking endpoints, the kinds' own API listings and console pages
    # (which share the console's sessions and forms).
    web_context = WebContext(runtime, rejections, KindConsole(Console.build(runtime, rejections)))
    handle_errors = _error_handling(runtime, rejections)
    kind_routers: list[APIRouter] = []
    link_apps: list[tuple[tuple[str, ...], Starlette]] = []
    for kind in runtime.kinds.values():
        router = kind.router(web_context)
        if router is not None:
            kind_routers.append(router)
        links = kind.link_router(web_context) or router  # without a link router, the kind's router serves them
        if kind.link_paths and links is not None:
            link_apps.append((kind.link_paths, link_app(links, handle_errors)))
    link_paths = tuple(path for kind in runtime.kinds.values() for path in kind.link_paths)
    # Innermost, after every limit below: a kind's link pages go to an app of its own link routes, not matched
    # after the console's and the API's.
    app.add_middleware(LinkRoutes, link_apps=link_apps)
    # Pure ASGI, before routing, the last added outermost: header size, the API's bearer token (and /openapi.json,
    # which describes the API), then the body limits, so no unauthenticated or oversized body is read or parsed.
    app.add_middleware(BodyLimit, limit_for=lambda path: body_limit(runtime.settings, path))
    app.add_middleware(BearerTokenGate, authenticate=bearer_authenticator(runtime),
                       protects=lambda path: (is_api(path) and path != API_DOCS) or path == app.openapi_url,
                       on_rejected=on_api_rejected or rejections.api_recorder, on_refused=rejections.refused)
    app.add_middleware(HeaderLimit, max_bytes=web.max_header_bytes)
    # Outermost: a client refused too often costs nothing more.
    app.add_middleware(Throttle, rejections=rejections, link_paths=link_paths)
    app.include_router(console_router(runtime, rejections))
    app.include_router(api_campaigns_router(runtime))
    app.include_router(api_audit_router(runtime))
    app.include_router(api_definitions_router(runtime))
    app.include_router(api_entries_router(runtime))
    app.include_router(api_operations_router(runtime))
    app.include_router(api_retry_router(runtime))
    app.include_router(api_reporting_router(runtime))
    app.include_router(api_simulate_router(runtime))
    for router in kind_routers:
        app.include_router(router)
    handle_errors(app)

    heads: list[str | None] = []  # the migrations' head, read from the files once: they do not change under the app

    @app.get("/health")
    def health() -> JSONResponse:
        # 503 unless the database answers and its schema is current, so a load balancer or `make run` can wait on it.
        try:
            revision = current_revision(runtime.engine)
        except SQLAlchemyError as exc:
            log.warning("health check: database unavailable: %s", type(exc).__name__)
            return JSONResponse({"status": "database unavailable", "revision": None}, status_code=503)
        if not heads:
            heads.append(head_revision())
        head = heads[0]
        if revision != head:
            return JSONResponse({"status": "migrations pending", "revision": revision, "head": head}, status_code=503)
        return JSONResponse({"status": "ok", "revision": revision})

    campaign_cursors, run_cursors = Cursors(runtime, "campaigns"), Cursors(runtime, "runs")

    @app.get("/api/campaigns")
    def campaigns(request: Request, response: Response, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  cursor: Annotated[str | None, Query(max_length=1000)] = None) -> list[dict[str, Any]]:
        """Campaigns in (folder, name, id) order, ``limit`` at a time; the next page's URL is in the ``Link``
        header (rel="next"), its cursor in ``X-Next-Cursor``, neither on the last page."""
        after = campaign_cursors.read(cursor, "campaigns", _campaign_position) if cursor else None
        found = list_campaigns(runtime, limit + 1, after)
        page = found[:limit]
        next_link(request, response, campaign_cursors.make([page[-1][k] for k in ("folder", "name", "id")],
                                                           "campaigns") if len(found) > limit else None)
        return page

    @app.get("/api/kinds")
    def kinds() -> list[dict[str, Any]]:
        """The campaign kinds installed: their facets, run listing and console tabs."""
        return [kind.describe() for kind in runtime.kinds.values()]

    @app.get("/api/campaigns/{campaign_id}")
    def campaign(campaign_id: str) -> dict[str, Any]:
        return _or_404(lambda: campaign_summary(runtime, campaign_id))

    @app.get("/api/campaigns/{campaign_id}/runs")
    def runs(
        campaign_id: str,
        request: Request,
        response: Response,
        status: str | None = None,
        search: Annotated[str | None, Query(max_length=300, description="the start of the target key")] = None,
        node: Annotated[str | None, Query(max_length=100, description="only runs at this node")] = None,
        cycle: int | None = None,
        sort: str = "id",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(max_length=1000, description="the next page's, from the Link header")]
        = None,
        offset: Annotated[int, Query(ge=0, description="deprecated: deep offsets are slow; use cursor")] = 0,
    ) -> list[dict[str, Any]]:
        """A campaign's runs in ``sort`` order (prefix ``-`` to reverse), then id in the same direction; the next
        page's URL is in the ``Link`` header (rel="next"), its cursor in ``X-Next-Cursor``."""
        query = RunQuery(campaign_id, status=status, search=search, node=node, cycle=cycle, sort=sort.lstrip("-"),
                         descending=sort.startswith("-"), limit=limit + 1, offset=offset)
        column = _or_404(query.column)
        if cursor:
            if offset:
                raise HTTPException(400, "offset: give a cursor or an offset, not both")
            query = replace(query, after=run_cursors.read(cursor, query.filters(), _run_position(column)))
        found = _or_404(lambda: list_runs(runtime, query))
        page = found[:limit]
        if len(found) > limit:
            value, run_id = query.position(page[-1])
            next_link(request, response, run_cursors.make(
                [value.isoformat() if isinstance(value, datetime) else value, run_id], query.filters()))
        return page

    @app.get("/api/contacts/{key:path}")
    def contact_of(key: str) -> dict[str, Any]:
        """A target across campaigns: its attributes, custom fields and every run."""
        return _or_404(lambda: contact(runtime, key))

    @app.get("/api/runs/{run_id}")
    def run(run_id: int) -> dict[str, Any]:
        return _or_404(lambda: run_timeline(runtime, run_id))

    @app.post("/api/runs/{run_id}/events", status_code=201)
    def event(run_id: int, body: EventInput, request: Request) -> dict[str, Any]:
        sender = Actor(request.state.principal.user_name, None, client_ip(request))
        try:
            event_id = _or_404(lambda: send_event(runtime, run_id, body.name, body.payload, source="api",
                                                  actor=sender))
        except InvalidEvent as exc:  # a name reserved for this run's kind: shaped like FastAPI's own 422
            raise HTTPException(422, [{"loc": ["body", "name"], "msg": str(exc).removeprefix("name: "),
                                       "type": "value_error"}]) from None
        return {"event_id": event_id}

    return app


def _error_handling(runtime: Runtime, rejections: Rejections) -> Callable[[Starlette], None]:
    """The app's answers to exceptions, for the main app and the kinds' link app alike."""

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        # A route's own 403 (GET /api/plugins for a non-admin) is audited like the token gate's.
        principal = getattr(request.state, "principal", None)
        if exc.status_code == 403 and principal is not None:
            await run_in_threadpool(rejections.refused, client_ip(request), principal.user_name, str(exc.detail),
                                    request.method, request.url.path)
        return await http_exception_handler(request, exc)

    async def known_problem(request: Request, exc: Exception) -> Response:
        # A state the product knows (not found, closed, refused) is never a bare 500, whichever route met it.
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, InvalidState) else 400
        if is_api(request.url.path):
            return JSONResponse({"detail": str(exc)}, status_code=status)
        return render_page(runtime, "link_error", status, message=str(exc))

    def install(app: Starlette) -> None:
        app.add_exception_handler(StarletteHTTPException, refused)
        app.add_exception_handler(CampaignkitError, known_problem)

    return install


def _campaign_position(position: Any) -> tuple[str, str, str]:
    folder, name, campaign_id = position
    if not all(isinstance(part, str) for part in position):
        raise TypeError("a campaigns cursor holds a folder, a name and an id")
    return folder, name, campaign_id


def _run_position(column: Any) -> Callable[[Any], tuple[Any, int]]:
    """How a runs cursor's [sort value, id] is read back under a sort column: times as ISO 8601 in UTC."""
    timed = isinstance(column.type, UTCDateTime)

    def position(found: Any) -> tuple[Any, int]:
        value, run_id = found
        if not isinstance(run_id, int) or isinstance(run_id, bool):
            raise TypeError("a runs cursor ends with a run id")
        if value is None:
            if not column.nullable:
                raise ValueError("no value in a cursor for a column that has one")
            return None, run_id
        if timed:
            at = datetime.fromisoformat(value)
            if at.tzinfo is None:
                raise ValueError("a time in a cursor has its offset")
            return at, run_id
        if isinstance(value, bool) or not isinstance(value, int if column.name == "id" else str):
            raise TypeError("a runs cursor's value is the sort column's")
        return value, run_id

    return position


def _or_404(call: Any) -> Any:
    try:
        return call()
    except InvalidEvent:
        raise
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except InvalidState as exc:
        raise HTTPException(409, str(exc)) from None
    except CampaignkitError as exc:
        raise HTTPException(400, str(exc)) from None
