"""Single sign-on to the console with OpenID Connect (settings ``oidc``; off, and these routes absent, without an
issuer).

GET /sign-in/sso sends the browser to the provider. What the callback needs (state, nonce, the PKCE verifier) goes
in a short-lived cookie signed with secret_key, HttpOnly, SameSite=Lax and only for /sign-in/sso; the URL carries
only the state. GET /sign-in/sso/callback checks that the state is this browser's, exchanges the code, checks the ID
token (core/web/oidc.py), and hands the identity to core/accounts/sso.py, which finds or makes the account, refreshes
its role from the claims and opens a session as a password sign-in does. Any refusal shows the sign-in page with what
went wrong, and is audited as System Access / Login Failed.
"""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ...accounts.sessions import Session
from ...accounts.sso import Identity, SignOnRefused, SingleSignOn
from ...audit import AuditSubType, AuditType
from ..limits import client_ip
from ..links import LinkError, LinkSigner
from . import COOKIE, Console
from .sign_in import _https, sign_in_page_for

if TYPE_CHECKING:
    from ..oidc import Pending

log = logging.getLogger(__name__)

START = "/sign-in/sso"
CALLBACK = "/sign-in/sso/callback"
PENDING_COOKIE = "ck_sso"  # the sign-in under way, signed; sent back only to START and CALLBACK
PENDING_MINUTES = 10
PURPOSE = "console-sso"  # the signing salt: a link signed for anything else is no sign-in in progress


class Refused(Exception):
    """A callback refused before the provider's answer is looked at (no sign-in in progress, a foreign state)."""

    def __init__(self, message: str, reason: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


def router(console: Console) -> APIRouter:
    routes = APIRouter()
    runtime = console.runtime
    settings = runtime.settings.oidc
    if not settings.enabled:
        return routes
    from ..oidc import OidcClient, OidcError  # Authlib and joserfc load only where single sign-on is on

    label = settings.button_label
    client = OidcClient(settings, runtime.settings.web.base_url.rstrip("/") + CALLBACK)
    accounts = SingleSignOn(runtime)

    @routes.get(START)
    def start(request: Request) -> Response:
        if console.session(request):
            return RedirectResponse("/campaigns", 303)
        signer = _signer(console)
        if signer is None:
            log.error("single sign-on needs secret_key to sign its cookie: run `campaignkit init`")
            return sign_in_page_for(console, 503, message=f"Sign-in with {label} is not set up completely: ask an "
                                    "admin (campaignkit's secret_key is not set).")
        try:
            url, pending = client.begin()
        except OidcError as failed:
            return sign_in_page_for(console, failed.status, message=str(failed))
        expires = runtime.clock.now() + timedelta(minutes=PENDING_MINUTES)
        response = RedirectResponse(url, 303)
        response.set_cookie(PENDING_COOKIE, signer.sign(PURPOSE, pending.as_dict(), expires),
                            max_age=PENDING_MINUTES * 60, path=START, httponly=True, samesite="lax",
                            secure=_https(request, console))
        return response

    @routes.get(CALLBACK)
    def callback(request: Request) -> Response:
        ip = client_ip(request)
        try:
            token, session = finish(request, ip)
        except (Refused, OidcError, SignOnRefused) as refused:
            user = refused.user if isinstance(refused, SignOnRefused) else "anonymous"
            status = refused.status if isinstance(refused, Refused | OidcError) else 403
            return refuse(request, ip, status, str(refused), refused.reason, user)
        except Exception:  # a bug or a database failure: a page that says so, never a traceback
            log.exception("single sign-on callback failed")
            return refuse(request, ip, 500, "The sign-in could not be completed because of an error in campaignkit: "
                          "try again, or ask an admin to look at its log.", "internal error", "anonymous")
        response = RedirectResponse("/campaigns", 303)
        secure = _https(request, console)
        response.set_cookie(COOKIE, token, max_age=int((session.expires_at - runtime.clock.now()).total_seconds()),
                            path="/", httponly=True, samesite="lax", secure=secure)
        response.delete_cookie(PENDING_COOKIE, path=START, httponly=True, samesite="lax", secure=secure)
        return response

    def finish(request: Request, ip: str | None) -> tuple[str, Session]:
        query = request.query_params
        pending = _pending(console, request.cookies.get(PENDING_COOKIE))
        error = query.get("error")
        if error is not None:
            said = error[:60] if error.replace("_", "").isalpha() else "an error"  # their text is not shown
            message = (f"The sign-in was cancelled at {label}, or {label} refused it." if said == "access_denied"
                       else f"{label} could not sign you in ({said}).")
            raise Refused(message + " Try again, or ask an admin.", f"the provider answered {said}", 401)
        if pending is None:
            raise Refused(f"This sign-in was not started here, or took longer than {PENDING_MINUTES} minutes: "
                          "start again.", "no sign-in in progress (no cookie, forged or expired)")
        if not hmac.compare_digest(query.get("state", "").encode(), pending.state.encode()):
            raise Refused("This answer does not belong to the sign-in this browser started: start again.",
                          "the state does not match the sign-in in progress")
        code = query.get("code")
        if not code:
            raise Refused(f"{label} answered without a sign-in code: start again.", "no code in the answer")
        claims = client.finish(code, pending)
        identity = Identity(str(claims["iss"]), str(claims["sub"]), claims)
        return accounts.sign_in(identity, ip)

    def refuse(request: Request, ip: str | None, status: int, message: str, reason: str, user: str) -> Response:
        console.rejections.reject(ip, AuditSubType.LOGIN_FAILED, "console single sign-on", reason, user=user,
                                  audit_type=AuditType.SYSTEM_ACCESS)
        response = sign_in_page_for(console, status, message=message)
        response.delete_cookie(PENDING_COOKIE, path=START, httponly=True, samesite="lax",
                               secure=_https(request, console))
        return response

    return routes


def _signer(console: Console) -> LinkSigner | None:
    settings = console.runtime.settings
    if settings.secret_key is None:
        return None
    return LinkSigner(settings.secret_key.get_secret_value(),
                      [key.get_secret_value() for key in settings.previous_secret_keys])


def _pending(console: Console, cookie: str | None) -> Pending | None:
    """The sign-in this browser started, if its cookie is ours, unexpired and whole."""
    from ..oidc import Pending

    signer = _signer(console)
    if not cookie or signer is None:
        return None
    try:
        return Pending.from_dict(signer.verify(PURPOSE, cookie, console.runtime.clock.now()))
    except LinkError:
        return None
