"""The console: sign-in and sign-out, and the pages of people with an account (today: the campaigns list).

Every page needs a live session (core/accounts/sessions.py); every state-changing form is a same-origin form that
carries the session's CSRF token. Pages render from templates/console/ with the headers of all our pages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..accounts.sessions import Session, Sessions, SignInRefused
from ..audit import AuditSubType, AuditType
from ..campaigns.queries import list_campaigns
from ..runtime import Runtime
from .forms import FormRefused, origin_of, own_form
from .pages import PAGE_HEADERS
from .rejections import Rejections

COOKIE = "ck_session"
SIGN_IN_REFUSED = "wrong name or password, or a disabled or locked account"


def render_console(runtime: Runtime, page: str, status: int = 200, **variables: Any) -> HTMLResponse:
    html = runtime.pages.get_template(f"console/{page}.html").render(**variables)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def console_router(runtime: Runtime, rejections: Rejections) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    sessions = Sessions(runtime)
    own_origin = origin_of(runtime.settings.web.base_url)

    def signed_in(request: Request) -> Session | None:
        return sessions.resume(request.cookies.get(COOKIE))

    def page(request: Request, render: Callable[[Session], Response]) -> Response:
        session = signed_in(request)
        return render(session) if session is not None else RedirectResponse("/sign-in", 303)

    @router.get("/")
    def home(request: Request) -> Response:
        return RedirectResponse("/campaigns" if signed_in(request) else "/sign-in", 303)

    @router.get("/sign-in")
    def sign_in_page(request: Request) -> Response:
        if signed_in(request):
            return RedirectResponse("/campaigns", 303)
        return render_console(runtime, "sign_in")

    @router.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        client = _client(request)
        try:
            fields = await own_form(request, own_origin)
        except FormRefused as refused:
            await run_in_threadpool(_refuse, rejections, client, refused.reason, "")
            return render_console(runtime, "sign_in", refused.status, message=str(refused))
        name = (fields.get("name") or [""])[0].strip()[:200]
        password = (fields.get("password") or [""])[0]
        try:
            token, session = await run_in_threadpool(sessions.sign_in, name, password, client)
        except SignInRefused as refused:
            await run_in_threadpool(_refuse, rejections, client, SIGN_IN_REFUSED, f"as {name[:100]!r}")
            return render_console(runtime, "sign_in", 401, message=str(refused), name=name)
        response = RedirectResponse("/campaigns", 303)
        response.set_cookie(COOKIE, token, max_age=int((session.expires_at - runtime.clock.now()).total_seconds()),
                            path="/", httponly=True, samesite="lax", secure=_https(request, runtime))
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        session = await run_in_threadpool(signed_in, request)
        if session is None:
            return RedirectResponse("/sign-in", 303)
        try:
            fields = await own_form(request, own_origin)
        except FormRefused as refused:
            return render_console(runtime, "message", refused.status, session=session, message=str(refused))
        if not session.csrf_matches((fields.get("csrf") or [""])[0]):
            return render_console(runtime, "message", 403, session=session,
                                  message="this form is out of date: reload the page and try again")
        await run_in_threadpool(sessions.sign_out, session, _client(request))
        response = RedirectResponse("/sign-in", 303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=_https(request, runtime))
        return response

    @router.get("/campaigns")
    def campaigns(request: Request) -> Response:
        return page(request, lambda session: render_console(
            runtime, "campaigns", session=session, campaigns=list_campaigns(runtime)))

    return router


def _refuse(rejections: Rejections, client: str | None, reason: str, detail: str) -> None:
    # One reason for every refused sign-in, so that a flood coalesces into one record (with a count) per client and
    # window; the name asked for goes to the detail, the password nowhere.
    rejections.reject(client, AuditSubType.LOGIN_FAILED, "console sign-in", reason, detail,
                      audit_type=AuditType.SYSTEM_ACCESS)


def _https(request: Request, runtime: Runtime) -> bool:
    """Secure cookies when the browser is on https: the base URL says so, or a trusted proxy does (uvicorn sets the
    scheme from X-Forwarded-Proto only for web.trusted_proxies)."""
    return request.url.scheme == "https" or runtime.settings.web.base_url.lower().startswith("https://")


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None
