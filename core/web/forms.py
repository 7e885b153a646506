"""Reading a form POSTed from one of our own pages, and refusing anything else before it is looked at.

A cross-site page can make a browser POST to us, but it cannot send our Origin; a JSON or text/plain POST is not
what our forms send. Our pages send Referrer-Policy: no-referrer, under which browsers post their forms with
"Origin: null": that names no site, so Sec-Fetch-Site decides, as it does when Origin is absent.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

FORM_TYPE = "application/x-www-form-urlencoded"
SAME_SITE_FETCH = ("same-origin", "none")  # Sec-Fetch-Site of a form on our page, or of a typed/bookmarked URL


class FormRefused(Exception):
    """``str(exc)`` for the person, ``reason`` for the audit record (never a credential)."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def own_form(request: Request, own_origin: str, max_fields: int = 50, what: str = "POST",
                   use: str = "use the page's form") -> dict[str, list[str]]:
    """The fields of a form our own page posted, or FormRefused (403 cross-site, 415 not a form, 400 malformed).
    ``what`` names the request in the audit reasons ("decision POST"), ``use`` tells the person what to do."""
    origin = request.headers.get("origin")
    fetch_site = request.headers.get("sec-fetch-site")
    if origin not in (None, "null") and origin.lower() != own_origin:
        raise FormRefused(403, "this request came from another site; nothing was changed",
                          f"cross-site {what} refused (Origin {origin[:100]})")
    if origin in (None, "null") and fetch_site is not None and fetch_site not in SAME_SITE_FETCH:
        raise FormRefused(403, "this request came from another site; nothing was changed",
                          f"cross-site {what} refused (Sec-Fetch-Site {fetch_site[:40]})")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != FORM_TYPE:
        raise FormRefused(415, f"{use}; nothing was changed",
                          f"{what} refused: content type {media[:60] or 'missing'}, not a form")
    try:
        return parse_qs((await request.body()).decode("utf-8"), max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise FormRefused(400, "this form could not be read; nothing was changed", f"{what} refused: malformed form") \
            from None
