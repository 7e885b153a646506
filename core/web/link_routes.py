"""The recipients' pages (a simulation's tracking pixel and links, an approver's decision page) on a short path.

They take most of the requests a campaign brings, yet in one app they would be matched after the console's and the
API's hundred-odd routes, each nested router tried in turn (FastAPI matches included routers level by level). Each
kind's link routes get an app of their own, with the same error handling, and a path under the kind's
``link_paths`` goes straight there, after every limit (throttle, headers, body) has run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

# FastAPI's own telemetry asks the OpenTelemetry providers on every request whether it is on: not on this path.
NO_TELEMETRY = {"tracing": False, "metrics": False, "logs": False}


def link_app(router: Router, handle_errors: Callable[[Starlette], None]) -> Starlette:
    """An app of one kind's link routes (the same route objects, so one state between them): FastAPI's for an
    APIRouter, Starlette's for plain routes."""
    app: Starlette
    if isinstance(router, APIRouter):
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, telemetry=NO_TELEMETRY)  # type: ignore[arg-type]
        app.include_router(router)
    else:
        app = Starlette(routes=router.routes)
    handle_errors(app)
    return app


class LinkRoutes:
    """ASGI middleware, innermost: a request under a kind's link paths goes to that kind's link app, any other to
    the app."""

    def __init__(self, app: ASGIApp, link_apps: Sequence[tuple[tuple[str, ...], ASGIApp]]) -> None:
        self.app = app
        self.link_apps = tuple(link_apps)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            for prefixes, links in self.link_apps:
                if path.startswith(prefixes):
                    await links(scope, receive, send)
                    return
        await self.app(scope, receive, send)
