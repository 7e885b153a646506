"""The console: pages for people with an account, one route module per area (sign_in, campaigns, audit), each
rendering its templates from templates/console/. Every page needs a live session (core/accounts/sessions.py);
every state-changing form is a same-origin form that carries the session's CSRF token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...accounts.sessions import Session, Sessions
from ...audit import Actor
from ...runtime import Runtime
from ..forms import FormRefused, origin_of, own_form
from ..limits import client_ip
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

    async def posted(self, request: Request, allowed: Callable[[Session], str | None] = lambda _: None,
                     ) -> tuple[Session, dict[str, list[str]]] | Response:
        """The session and fields of a state-changing form: signed in, ``allowed`` (which returns why not, or
        None), posted from our own origin, with the session's CSRF token. Anything else is answered here."""
        session = await run_in_threadpool(self.session, request)
        if session is None:
            return RedirectResponse("/sign-in", 303)
        refusal = allowed(session)
        if refusal is not None:
            return self.render("message", 403, session=session, message=refusal)
        try:
            fields = await own_form(request, self.own_origin)
        except FormRefused as refused:
            return self.render("message", refused.status, session=session, message=str(refused))
        if not session.csrf_matches((fields.get("csrf") or [""])[0]):
            return self.render("message", 403, session=session,
                               message="this form is out of date: reload the page and try again")
        return session, fields

    @staticmethod
    def actor(session: Session, request: Request) -> Actor:
        """Who a console request acts as, for the audit trail: the signed-in person, from the client's address."""
        return Actor(session.user_name, None, client_ip(request))


def console_router(runtime: Runtime, rejections: Rejections) -> APIRouter:
    from . import actions, audit, campaigns, sign_in, users

    console = Console(runtime, Sessions(runtime), rejections, origin_of(runtime.settings.web.base_url))
    router = APIRouter(include_in_schema=False)
    for area in (sign_in, campaigns, actions, audit, users):
        router.include_router(area.router(console))
    return router
