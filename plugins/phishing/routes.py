"""The recipients' side of a simulation: the tracking pixel, the link and its landing page, the form whose values
are thrown away, the tracked attachment, and the report button of a mail-client add-in.

Every hit goes through the HitRecorder (classified, recorded, committed) before the answer is sent. A token that
was never issued is a 404 and counts towards the client's refusal limit; one whose links have expired is a 410.
Submitted form values are never read into anything but the names of the fields.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from email import policy
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route, Router

from campaignkit.core.audit import AuditSubType
from campaignkit.core.errors import CampaignkitError
from campaignkit.core.outbound.client import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from campaignkit.core.web.pages import PAGE_HEADERS, render_page
from campaignkit.core.web.rejections import Rejections

from .links import is_token
from .settings import PhishingSettings
from .tracking import HitOutcome, HitRecorder, HitRequest
from .training import load_quiz

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
MAX_FORM_BYTES = 65536
FIELD_NAME_LIMIT = 64


def recipient_router(runtime: Runtime, rejections: Rejections) -> Router:
    """Plain Starlette routes, not FastAPI's: they take most of a simulation's requests, and FastAPI's matching
    and parameter solving cost more than the rest of a pixel's answer."""
    recorder = HitRecorder(runtime)
    settings = recorder.settings

    async def hit(request: Request, token: str, event: str, **kwargs: Any) -> HitOutcome | Response:
        """The hit recorded (or the refusal answered): an unknown token is 404, an expired one 410."""
        client = request.client.host if request.client else None
        if not is_token(token):
            return await _refused(client, "malformed token")
        outcome = await recorder.submit(HitRequest(
            token=token, event=event, method=request.method, user_agent=request.headers.get("user-agent", ""),
            client_ip=client, **kwargs))
        if outcome.row is None:
            return await _refused(client, "unknown token")
        if outcome.expired:
            return render_page(runtime, "link_error", 410, message="this simulation has ended")
        return outcome

    async def _refused(client: str | None, reason: str) -> Response:
        await run_in_threadpool(rejections.reject, client, AuditSubType.LINK_REJECTED, "phishing link", reason)
        return render_page(runtime, "link_error", 404, message="this link is not valid")

    async def opened(request: Request) -> Response:
        token = request.path_params["token"]
        outcome = await hit(request, token, "opened")
        if isinstance(outcome, Response):
            return outcome
        return Response(PIXEL, media_type="image/gif", headers=NO_STORE)

    async def clicked(request: Request) -> Response:
        token = request.path_params["token"]
        outcome = await hit(request, token, "clicked")
        if isinstance(outcome, Response):
            return outcome
        campaign = await settings.of(outcome.row.campaign_id)
        if campaign.scanners.confirm_clicks and request.method == "GET":
            return _confirm_page(runtime, token)
        return await _landing(token, outcome, campaign)

    async def page(request: Request) -> Response:
        token = request.path_params["token"]
        """Where the confirmation page's script goes: a click a browser confirmed by running it."""
        outcome = await hit(request, token, "clicked", confirmed=True)
        if isinstance(outcome, Response):
            return outcome
        campaign = await settings.of(outcome.row.campaign_id)
        return await _landing(token, outcome, campaign)

    async def _landing(token: str, outcome: HitOutcome, campaign: PhishingSettings) -> Response:
        attack = campaign.attack(outcome.row.attack) or campaign.attacks[0]
        if attack.kind == "credentials":
            template = attack.landing_page or "pages/phishing/sign_in.html"
            html = runtime.pages.get_template(template).render(action=f"/p/{token}/submit", attack=attack.name)
            return HTMLResponse(html, headers=PAGE_HEADERS)
        return _awareness(runtime, outcome.row, attack.kind)

    async def submitted(request: Request) -> Response:
        token = request.path_params["token"]
        fields = await _field_names(request)
        outcome = await hit(request, token, "submitted", fields=fields)
        if isinstance(outcome, Response):
            return outcome
        return RedirectResponse(f"/p/{token}/learn", status_code=303, headers=NO_STORE)

    async def learn(request: Request) -> Response:
        token = request.path_params["token"]
        if not is_token(token):
            return render_page(runtime, "link_error", 404, message="this link is not valid")
        found = await run_in_threadpool(_row, runtime, token)
        if found is None:
            return render_page(runtime, "link_error", 404, message="this link is not valid")
        return _awareness(runtime, found, "credentials")

    async def attachment(request: Request) -> Response:
        token, name = request.path_params["token"], request.path_params["name"]
        outcome = await hit(request, token, "clicked", extra={"via": "attachment"})
        if isinstance(outcome, Response):
            return outcome
        html = runtime.pages.get_template("pages/phishing/attachment.html").render(name=name)
        safe = "".join(ch for ch in name if ch.isalnum() or ch in "._-")[:80] or "attachment.html"
        return Response(html, media_type="text/html", headers={
            **PAGE_HEADERS, "Content-Disposition": f'attachment; filename="{safe}"'})

    async def training(request: Request) -> Response:
        token = request.path_params["token"]
        """The built-in course and its quiz; opening it is Started training."""
        outcome = await hit(request, token, "training_started")
        if isinstance(outcome, Response):
            return outcome
        campaign = await settings.of(outcome.row.campaign_id)
        return _course(runtime, token, campaign.training.course, outcome.row)

    async def quiz(request: Request) -> Response:
        token = request.path_params["token"]
        """The quiz's answers: Finished training only when it is passed."""
        answers = await _answers(request)
        if not is_token(token):
            return await _refused(request.client.host if request.client else None, "malformed token")
        found = await run_in_threadpool(_row, runtime, token)
        if found is None:
            return await _refused(request.client.host if request.client else None, "unknown token")
        campaign = await settings.of(found.campaign_id)
        quiz = load_quiz(runtime.pages, campaign.training.course)
        score = quiz.score(answers)
        if score < quiz.pass_mark:
            return _course(runtime, token, campaign.training.course, found, score=score)
        outcome = await hit(request, token, "training_finished", confirmed=True, extra={"score": score})
        if isinstance(outcome, Response):
            return outcome
        return _course(runtime, token, campaign.training.course, found, score=score, finished=True)

    async def training_report(request: Request) -> Response:
        token = request.path_params["token"]
        """An external training provider (lms) reports progress: {"event": "started" | "finished"}, signed with
        its shared secret (X-Campaignkit-Timestamp, X-Campaignkit-Signature)."""
        body = await request.body()
        secret = _lms_secret(runtime)
        if secret is None or not _signed(secret, request, body):
            return JSONResponse({"error": "signature"}, status_code=401)
        try:
            event = {"started": "training_started", "finished": "training_finished"}[json.loads(body)["event"]]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "event: started or finished"}, status_code=400)
        outcome = await hit(request, token, event, trusted=True, extra={"via": "lms"})
        if isinstance(outcome, Response):
            return JSONResponse({"error": "unknown or expired link"}, status_code=outcome.status_code)
        return JSONResponse({"recorded": event})

    async def reported(request: Request) -> Response:
        token = request.path_params["token"]
        return await _report(request, token)

    async def reported_by_header(request: Request) -> Response:
        """A mail-client add-in's report button: the message's X-Campaignkit-Token header, sent back."""
        return await _report(request, request.headers.get("x-campaignkit-token", "").strip())

    async def report_preflight(request: Request) -> Response:
        return Response(status_code=204, headers=_cors())

    async def _report(request: Request, token: str) -> Response:
        outcome = await hit(request, token, "reported")
        if isinstance(outcome, Response):
            return JSONResponse({"reported": False}, status_code=outcome.status_code, headers=_cors())
        return JSONResponse({"reported": True, "simulation": True}, headers=_cors())

    # In the order they are tried: the pixel and the link first; /p/report after /p/{token}, which it also matches.
    return Router(routes=[
        Route("/p/{token}/o.gif", opened, methods=["GET"]),
        Route("/p/{token}", clicked, methods=["GET", "HEAD"]),
        Route("/p/{token}/page", page, methods=["GET"]),
        Route("/p/{token}/submit", submitted, methods=["POST"]),
        Route("/p/{token}/learn", learn, methods=["GET"]),
        Route("/p/{token}/a/{name}", attachment, methods=["GET"]),
        Route("/p/{token}/training", training, methods=["GET"]),
        Route("/p/{token}/training", quiz, methods=["POST"]),
        Route("/p/{token}/training/complete", training_report, methods=["POST"]),
        Route("/p/{token}/report", reported, methods=["POST"]),
        Route("/p/report", reported_by_header, methods=["POST"]),
        Route("/p/report", report_preflight, methods=["OPTIONS"]),
    ])


async def _field_names(request: Request) -> tuple[str, ...]:
    """The names of the form's fields. The values are dropped here, before anything else sees the request: they are
    never stored, logged, audited or kept past this function. A URL-encoded form gives its keys; a multipart form the
    ``name`` of each part's Content-Disposition (its payload is never decoded); any other body, no names."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            break
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            names = [key for key, _ in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)]
        elif content_type.startswith("multipart/form-data"):
            names = _part_names(body, content_type)
        else:
            names = []
    except (UnicodeError, ValueError, LookupError, TypeError, AttributeError):
        names = []
    del body
    kept: list[str] = []
    for name in names:
        clean = "".join(ch for ch in name if ch.isalnum() or ch in "_-.")[:FIELD_NAME_LIMIT]
        if clean and clean not in kept:
            kept.append(clean)
    return tuple(kept)


def _part_names(body: bytes, content_type: str) -> list[str]:
    """The form-data names of a multipart body's parts, read from their headers only."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        return []
    names = []
    for part in message.iter_parts():
        disposition = part["content-disposition"]
        name = disposition.params.get("name") if disposition is not None else None
        if isinstance(name, str):
            names.append(name)
    return names


async def _answers(request: Request) -> dict[str, str]:
    body = await request.body()
    return {key: value for key, value in parse_qsl(body[:MAX_FORM_BYTES].decode("utf-8", "replace"))
            if key.startswith("q") and key[1:].isdigit()}


def _row(runtime: Runtime, token: str) -> Any:
    from campaignkit.core.db import reading

    from .store import result_by_token

    with reading(runtime.engine) as conn:
        return result_by_token(conn, token)


def _course(runtime: Runtime, token: str, course: str, row: Any, *, score: int | None = None,
            finished: bool = False) -> HTMLResponse:
    quiz = load_quiz(runtime.pages, course)
    return render_page(runtime, "phishing/training", course_template=f"pages/phishing/training/{course}.html",
                       questions=quiz.questions, pass_mark=quiz.pass_mark, total=len(quiz.questions), score=score,
                       finished=finished, recipient=row.name, action=f"/p/{token}/training")


def _lms_secret(runtime: Runtime) -> bytes | None:
    if not runtime.registry.has("training provider", "lms"):
        return None
    try:
        provider = runtime.registry.training_provider("lms", runtime)
    except CampaignkitError:  # not configured: nobody may report
        return None
    return provider.secret  # type: ignore[attr-defined, no-any-return]


def _signed(secret: bytes, request: Request, body: bytes) -> bool:
    """The signature over timestamp and body matches, and the timestamp is within five minutes (no replay later)."""
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), request.headers.get(SIGNATURE_HEADER, ""))


def _awareness(runtime: Runtime, row: Any, kind: str) -> HTMLResponse:
    return render_page(runtime, "phishing/awareness", recipient=row.name, kind=kind)


def _confirm_page(runtime: Runtime, token: str) -> HTMLResponse:
    """A page whose script confirms the click, then shows the landing page: scanners fetch, people's browsers run
    scripts. Its one script is allowed by a nonce; nothing else may run."""
    nonce = secrets.token_urlsafe(16)
    html = runtime.pages.get_template("pages/phishing/confirm.html").render(nonce=nonce, page=f"/p/{token}/page")
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return HTMLResponse(html, headers={**PAGE_HEADERS, "Content-Security-Policy": csp})


def _cors() -> dict[str, str]:
    # The add-in runs on its own origin; the token alone says which email is reported, so no credentials are sent.
    return {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "X-Campaignkit-Token, Content-Type", "Cache-Control": "no-store"}
