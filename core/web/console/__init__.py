"""The console: pages for people with an account, one route module per area (sign_in, campaigns, audit), each
rendering its templates from templates/console/. Every page needs a live session (core/accounts/sessions.py);
every state-changing form is a same-origin form that carries the session's CSRF token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...accounts.sessions import Session, Sessions
from ...runtime import Runtime
from ..forms import origin_of
from ..pages import PAGE_HEADERS
from ..rejections import Rejections

COOKIE = "ck_session"


@dataclass(frozen=True)
class Console:
    """What every console route uses: the runtime, the sessions, the refusals recorder and our own origin."""

    runtime: Runtime
    sessions: Sessions
    rejections: Rejections
    own_origin: str

    def session(self, request: Request) -> Session | None:
        return self.sessions.resume(request.cookies.get(COOKIE))

    def render(self, template: str, status_code: int = 200, /, **variables: Any) -> HTMLResponse:
        """templates/console/<template>.html (positional-only, so that a page may have variables named alike)."""
        html = self.runtime.pages.get_template(f"console/{template}.html").render(**variables)
        return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)

    def page(self, request: Request, render: Callable[[Session], Response]) -> Response:
        """``render`` for a signed-in person; the sign-in page for anyone else."""
        session = self.session(request)
        return render(session) if session is not None else RedirectResponse("/sign-in", 303)


def console_router(runtime: Runtime, rejections: Rejections) -> APIRouter:
    from . import actions, audit, campaigns, sign_in, users

    console = Console(runtime, Sessions(runtime), rejections, origin_of(runtime.settings.web.base_url))
    router = APIRouter(include_in_schema=False)
    for area in (sign_in, campaigns, actions, audit, users):
        router.include_router(area.router(console))
    return router
