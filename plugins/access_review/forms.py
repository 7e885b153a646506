"""What a decision POST must look like before the review service sees it: a plain form from our own page.

A cross-site page can make a browser POST to a decision link it somehow learnt, but it cannot send our Origin, nor
(without reading our page) the page's nonce; a text/plain or JSON POST is not what our forms send. Each refusal is
one line for the audit trail (coalesced per client by Rejections).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

from .decisions import CHOICES

FORM_TYPE = "application/x-www-form-urlencoded"
SAME_SITE_FETCH = ("same-origin", "none")  # Sec-Fetch-Site of a form on our page, or of a typed/bookmarked URL


@dataclass(frozen=True)
class DecisionForm:
    choice: str | None  # approve / revoke, None for anything else
    nonce: str
    runs: set[int] = field(default_factory=set)  # the items a review-all page showed


class FormRefused(Exception):
    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason  # for the audit record


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def decision_form(request: Request, own_origin: str) -> DecisionForm:
    """The posted form, or FormRefused (403 cross-site, 415 not a form, 400 malformed)."""
    # Our pages send Referrer-Policy: no-referrer, under which browsers post their forms with "Origin: null": that
    # names no site, so Sec-Fetch-Site decides, as it does when Origin is absent.
    origin = request.headers.get("origin")
    fetch_site = request.headers.get("sec-fetch-site")
    if origin not in (None, "null") and origin.lower() != own_origin:
        raise FormRefused(403, "this request came from another site; nothing was changed",
                          f"cross-site decision POST refused (Origin {origin[:100]})")
    if origin in (None, "null") and fetch_site is not None and fetch_site not in SAME_SITE_FETCH:
        raise FormRefused(403, "this request came from another site; nothing was changed",
                          f"cross-site decision POST refused (Sec-Fetch-Site {fetch_site[:40]})")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != FORM_TYPE:
        raise FormRefused(415, "decisions are taken with the buttons of the page; nothing was changed",
                          f"decision POST refused: content type {media[:60] or 'missing'}, not a form")
    try:
        fields = parse_qs((await request.body()).decode("utf-8"), strict_parsing=False, max_num_fields=2000)
    except (UnicodeDecodeError, ValueError):
        raise FormRefused(400, "this form could not be read; nothing was changed",
                          "decision POST refused: malformed form") from None
    choice = (fields.get("choice") or [""])[0]
    try:
        shown = {int(value) for value in fields.get("run", [])}
    except ValueError:
        raise FormRefused(400, "this form could not be read; nothing was changed",
                          "decision POST refused: malformed item list") from None
    return DecisionForm(choice if choice in CHOICES else None, (fields.get("nonce") or [""])[0], shown)
