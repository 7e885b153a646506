"""The console: pages for people with an account, one route module per area (sign_in, campaigns, audit), each
rendering its templates from templates/console/. Every page needs a live session (core/accounts/sessions.py);
every state-changing form is a same-origin form that carries the session's CSRF token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...accounts.roles import GRANTS, Access
from ...accounts.sessions import Session, Sessions
from ...audit import Actor
from ...kinds import ConsolePerson
from ...runtime import Runtime
from ..forms import FormRefused, Upload, form_value, origin_of, own_form, own_upload_form
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
        async def fields_only() -> tuple[dict[str, list[str]], dict[str, Upload]]:
            return await own_form(request, self.own_origin), {}

        answer = await self._posted(request, allowed, fields_only)
        return answer if isinstance(answer, Response) else answer[:2]

    async def posted_upload(self, request: Request, allowed: Callable[[Session], str | None] = lambda _: None,
                            ) -> tuple[Session, dict[str, list[str]], dict[str, Upload]] | Response:
        """As ``posted``, for a form that may also send files (multipart/form-data): the session, fields and
        files."""
        return await self._posted(request, allowed, lambda: own_upload_form(request, self.own_origin))

    async def _posted(self, request: Request, allowed: Callable[[Session], str | None],
                      read: Callable[[], Awaitable[tuple[dict[str, list[str]], dict[str, Upload]]]],
                      ) -> tuple[Session, dict[str, list[str]], dict[str, Upload]] | Response:
        session = await run_in_threadpool(self.session, request)
        if session is None:
            return RedirectResponse("/sign-in", 303)
        refusal = allowed(session)
        if refusal is not None:
            await run_in_threadpool(self.rejections.refused, client_ip(request), session.user_name, refusal,
                                    request.method, request.url.path, "console form")
            return self.render("message", 403, session=session, message=refusal)
        try:
            fields, uploads = await read()
        except FormRefused as refused:
            return self.render("message", refused.status, session=session, message=str(refused))
        if not session.csrf_matches(form_value(fields, "csrf")):
            return self.render("message", 403, session=session,
                               message="this form is out of date: reload the page and try again")
        return session, fields, uploads

    @staticmethod
    def actor(session: Session, request: Request) -> Actor:
        """Who a console request acts as, for the audit trail: the signed-in person, from the client's address."""
        return Actor(session.user_name, None, client_ip(request))

    @staticmethod
    def person(session: Session, request: Request) -> ConsolePerson:
        """The signed-in person as a kind's console routes and tabs see them (core's kinds.ConsolePerson)."""
        return ConsolePerson(session.user_name, session.role.value, Access.OPERATE in GRANTS[session.role],
                             session.csrf, client_ip(request))

    @classmethod
    def build(cls, runtime: Runtime, rejections: Rejections) -> Console:
        return cls(runtime, Sessions(runtime), rejections, origin_of(runtime.settings.web.base_url))


def console_router(runtime: Runtime, rejections: Rejections) -> APIRouter:
    from . import (
        actions,
        api_docs,
        audit,
        campaigns,
        contacts,
        definitions,
        plugins,
        retry,
        schedule,
        sign_in,
        simulations,
        sso,
        users,
    )

    console = Console.build(runtime, rejections)
    router = APIRouter(include_in_schema=False)
    # definitions before campaigns: /campaigns/new is not a campaign's page.
    for area in (sign_in, sso, definitions, campaigns, contacts, actions, retry, simulations, audit, schedule,
                 plugins, users, api_docs):
        router.include_router(area.router(console))
    return router
