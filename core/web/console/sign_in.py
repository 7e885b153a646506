"""Signing in and out of the console."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...accounts.sessions import SignInRefused
from ...audit import AuditSubType, AuditType
from ..forms import FormRefused, form_value, own_form
from ..limits import client_ip
from . import COOKIE, Console

SIGN_IN_REFUSED = "wrong name or password, or a disabled or locked account"


def router(console: Console) -> APIRouter:
    routes = APIRouter()
    runtime = console.runtime

    @routes.get("/")
    def home(request: Request) -> Response:
        return RedirectResponse("/campaigns" if console.session(request) else "/sign-in", 303)

    @routes.get("/sign-in")
    def sign_in_page(request: Request) -> Response:
        if console.session(request):
            return RedirectResponse("/campaigns", 303)
        return sign_in_page_for(console)

    @routes.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        client = client_ip(request)
        try:
            fields = await own_form(request, console.own_origin)
        except FormRefused as refused:
            await run_in_threadpool(_refuse, console, client, refused.reason, "")
            return sign_in_page_for(console, refused.status, message=str(refused))
        name = form_value(fields, "name").strip()[:200]
        password = form_value(fields, "password")
        try:
            token, session = await run_in_threadpool(console.sessions.sign_in, name, password, client)
        except SignInRefused as refused:
            await run_in_threadpool(_refuse, console, client, SIGN_IN_REFUSED, f"as {name[:100]!r}")
            return sign_in_page_for(console, 401, message=str(refused), name=name)
        response = RedirectResponse("/campaigns", 303)
        response.set_cookie(COOKIE, token, max_age=int((session.expires_at - runtime.clock.now()).total_seconds()),
                            path="/", httponly=True, samesite="lax", secure=_https(request, console))
        return response

    @routes.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        posted = await console.posted(request)
        if isinstance(posted, Response):
            return posted
        session, _ = posted
        await run_in_threadpool(console.sessions.sign_out, session, client_ip(request))
        response = RedirectResponse("/sign-in", 303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=_https(request, console))
        return response

    return routes


def sign_in_page_for(console: Console, status_code: int = 200, /, **variables: Any) -> Response:
    """The sign-in page, with its single sign-on button when an OpenID Connect provider is configured."""
    oidc = console.runtime.settings.oidc
    return console.render("sign_in", status_code, sso_label=oidc.button_label if oidc.enabled else None, **variables)


def _refuse(console: Console, client: str | None, reason: str, detail: str) -> None:
    # One reason for every refused sign-in, so that a flood coalesces into one record (with a count) per client and
    # window; the name asked for goes to the detail, the password nowhere.
    console.rejections.reject(client, AuditSubType.LOGIN_FAILED, "console sign-in", reason, detail,
                              audit_type=AuditType.SYSTEM_ACCESS)


def _https(request: Request, console: Console) -> bool:
    """Secure cookies when the browser is on https: the base URL says so, or a trusted proxy does (uvicorn sets the
    scheme from X-Forwarded-Proto only for web.trusted_proxies)."""
    return request.url.scheme == "https" or console.runtime.settings.web.base_url.lower().startswith("https://")
