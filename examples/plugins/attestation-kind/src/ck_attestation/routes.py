"""The recipients' page: GET /attest/{token} shows the policy and a button; only that page's form POST confirms.

- A GET never confirms (mail scanners and link previews open links).
- A POST confirms only when it is a plain form (``application/x-www-form-urlencoded``) from our own origin, carrying
  the nonce of a page rendered for this very link within the last two hours; anything else changes nothing and is
  audited as a refused link (``Link Rejected``, coalesced per client by campaignkit's ``Rejections``).
- 404 for a link that was never valid, 410 for one that was (expired, or its run ended unanswered), 403/415/400 for
  a refused POST; a second confirmation shows the first. Every database access runs on a worker thread.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from campaignkit.core import Actor, CampaignkitError, EventAudit, LinkError, WebContext, render_page, send_event

from .links import PATH, nonce_matches, page_nonce, recipient_tag, verify_link
from .store import Item, run_item
from .workflow import ATTESTATION_RECORDED, ATTESTED_EVENT

FORM_TYPE = "application/x-www-form-urlencoded"
SAME_SITE_FETCH = ("same-origin", "none")  # Sec-Fetch-Site of a form on our page, or of a typed URL
LINK_REJECTED = "Link Rejected"  # campaignkit's own audit sub-type for refused links
SOURCE = "attestation-link"  # the confirmation event's source, kept with it
CROSS_SITE = "this request came from another site; nothing was confirmed"


class Refused(Exception):
    """A POST that is not our page's form: ``message`` for the person, ``reason`` for the audit record."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason  # never the token: it is a credential


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def attestation_router(web: WebContext) -> APIRouter:
    runtime = web.runtime
    own_origin = origin_of(runtime.settings.web.base_url)
    router = APIRouter()

    def refuse(client: str | None, reason: str) -> None:
        web.rejections.reject(client, LINK_REJECTED, "attestation link", reason)

    def error_page(status: int, message: str) -> HTMLResponse:
        return render_page(runtime, "link_error", status, message=message)

    def open_item(token: str, client: str | None) -> Item:
        """The run a valid link names, still addressed to its recipient; LinkError (audited) otherwise."""
        try:
            grant = verify_link(runtime, token)
            item = run_item(runtime, grant.run_id)
            if item is None or recipient_tag(item.recipient) != grant.recipient:
                raise LinkError("this link is not valid")
            if item.closed:
                raise LinkError(f"this attestation is closed ({item.closed}); nothing can be confirmed", gone=True)
        except LinkError as exc:
            refuse(client, str(exc))
            raise
        return item

    def show(token: str, client: str | None) -> HTMLResponse:
        try:
            item = open_item(token, client)
        except LinkError as exc:
            return error_page(410 if exc.gone else 404, str(exc))
        return render_page(
            runtime,
            "attestation",
            item=item,
            policy=item.settings.policy,
            action=f"/{PATH}/{token}",
            nonce=page_nonce(runtime, token),
        )

    def confirm(token: str, nonce: str, client: str | None) -> HTMLResponse:
        try:
            item = open_item(token, client)
        except LinkError as exc:
            return error_page(410 if exc.gone else 404, str(exc))
        if item.attested:  # a second POST (a double click, a reload) changes nothing
            return render_page(runtime, "attestation_done", item=item, first=False)
        if not nonce_matches(runtime, token, nonce):
            refuse(client, f"confirmation posted without a page of this link (run {item.run_id})")
            return error_page(400, "this page is out of date: open the link from your e-mail again, then confirm")
        try:
            # A system event (Attestation.system_events) raised by this page, audited with it in one transaction.
            confirmed = EventAudit(
                Actor(item.recipient, None, client),
                ATTESTATION_RECORDED,
                f"{item.recipient} confirmed {item.settings.policy.title!r} "
                f"(run {item.run_id})",
            )
            send_event(runtime, item.run_id, ATTESTED_EVENT, {"ip": client}, source=SOURCE, audit=confirmed)
        except CampaignkitError:  # the run ended between the page and the POST
            refuse(client, f"confirmation for a closed run (run {item.run_id})")
            return error_page(410, "this attestation is closed; nothing was confirmed")
        return render_page(runtime, "attestation_done", item=item, first=True)

    @router.get(f"/{PATH}/{{token}}")
    def page(token: str, request: Request) -> HTMLResponse:
        return show(token, _client(request))

    @router.post(f"/{PATH}/{{token}}")
    async def post(token: str, request: Request) -> HTMLResponse:
        client = _client(request)
        try:
            nonce = await _form_nonce(request, own_origin)
        except Refused as refused:
            await run_in_threadpool(refuse, client, refused.reason)
            return error_page(refused.status, str(refused))
        return await run_in_threadpool(confirm, token, nonce, client)

    return router


async def _form_nonce(request: Request, own_origin: str) -> str:
    """The nonce of a form posted from our page, or Refused (403 cross-site, 415 not a form, 400 malformed)."""
    # Our pages send Referrer-Policy: no-referrer, under which browsers post forms with "Origin: null": that names
    # no site, so Sec-Fetch-Site decides, as it does when Origin is absent.
    origin = request.headers.get("origin")
    fetch_site = request.headers.get("sec-fetch-site")
    if origin not in (None, "null") and origin.lower() != own_origin:
        raise Refused(403, CROSS_SITE, f"cross-site confirmation refused (Origin {origin[:100]})")
    if origin in (None, "null") and fetch_site is not None and fetch_site not in SAME_SITE_FETCH:
        raise Refused(403, CROSS_SITE, f"cross-site confirmation refused (Sec-Fetch-Site {fetch_site[:40]})")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != FORM_TYPE:
        raise Refused(
            415,
            "confirm with the button of the page; nothing was confirmed",
            f"confirmation refused: content type {media[:60] or 'missing'}, not a form",
        )
    try:
        fields = parse_qs((await request.body()).decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise Refused(
            400, "this form could not be read; nothing was confirmed", "confirmation refused: malformed form"
        ) from None
    return (fields.get("nonce") or [""])[0]


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None
