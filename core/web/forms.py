"""Reading a form POSTed from one of our own pages, and refusing anything else before it is looked at.

A cross-site page can make a browser POST to us, but it cannot send our Origin; a JSON or text/plain POST is not
what our forms send. Our pages send Referrer-Policy: no-referrer, under which browsers post their forms with
"Origin: null": that names no site, so Sec-Fetch-Site decides, as it does when Origin is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.errors import MessageError
from email.parser import BytesParser
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

FORM_TYPE = "application/x-www-form-urlencoded"
UPLOAD_TYPE = "multipart/form-data"  # a form with a file input
SAME_SITE_FETCH = ("same-origin", "none")  # Sec-Fetch-Site of a form on our page, or of a typed/bookmarked URL


class FormRefused(Exception):
    """``str(exc)`` for the person, ``reason`` for the audit record (never a credential)."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def form_value(fields: Mapping[str, list[str]], name: str) -> str:
    """A posted field's first value; '' when the form did not send it."""
    return (fields.get(name) or [""])[0]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class Upload:
    """A file sent with a form: its name as the browser gave it (empty when no file was chosen) and its bytes."""

    filename: str
    data: bytes


async def own_form(request: Request, own_origin: str, max_fields: int = 50, what: str = "POST",
                   use: str = "use the page's form") -> dict[str, list[str]]:
    """The fields of a form our own page posted, or FormRefused (403 cross-site, 415 not a form, 400 malformed).
    ``what`` names the request in the audit reasons ("decision POST"), ``use`` tells the person what to do."""
    _same_origin(request, own_origin, what)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != FORM_TYPE:
        raise FormRefused(415, f"{use}; nothing was changed",
                          f"{what} refused: content type {media[:60] or 'missing'}, not a form")
    return await _urlencoded(request, what, max_fields)


async def own_upload_form(request: Request, own_origin: str, max_fields: int = 50, what: str = "POST",
                          use: str = "use the page's form") -> tuple[dict[str, list[str]], dict[str, Upload]]:
    """As own_form, for a form that may also send files (multipart/form-data): its fields and its files by name.
    The body is bounded before it is read (BodyLimit, limits.body_limit); a form of more than ``max_fields`` parts,
    or one that is not well formed, is 400."""
    _same_origin(request, own_origin, what)
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media == FORM_TYPE:
        return await _urlencoded(request, what, max_fields), {}
    if media != UPLOAD_TYPE:
        raise FormRefused(415, f"{use}; nothing was changed",
                          f"{what} refused: content type {media[:60] or 'missing'}, not a form")
    try:
        return _multipart(await request.body(), content_type, max_fields)
    except (UnicodeError, ValueError, LookupError, TypeError, AttributeError, MessageError):  # whatever it chokes on
        raise FormRefused(400, "this form could not be read; nothing was changed", f"{what} refused: malformed form") \
            from None


def _multipart(body: bytes, content_type: str, max_fields: int) -> tuple[dict[str, list[str]], dict[str, Upload]]:
    """The standard library's MIME parser reads the parts; every part must be a named form-data field or file."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart() or message.defects:
        raise ValueError("not a multipart form")
    parts = list(message.iter_parts())
    if len(parts) > max_fields:
        raise ValueError("too many parts")
    fields: dict[str, list[str]] = {}
    uploads: dict[str, Upload] = {}
    for part in parts:
        disposition = part["content-disposition"]
        name = disposition.params.get("name") if disposition is not None else None
        data = part.get_payload(decode=True)
        if part.defects or not name or disposition.content_disposition != "form-data" or not isinstance(data, bytes):
            raise ValueError("not a form field")
        filename = disposition.params.get("filename")
        if filename is not None:
            uploads[name] = Upload(filename, data)
        else:
            fields.setdefault(name, []).append(data.decode("utf-8"))
    return fields, uploads


def _same_origin(request: Request, own_origin: str, what: str) -> None:
    origin = request.headers.get("origin")
    fetch_site = request.headers.get("sec-fetch-site")
    if origin not in (None, "null") and origin.lower() != own_origin:
        raise FormRefused(403, "this request came from another site; nothing was changed",
                          f"cross-site {what} refused (Origin {origin[:100]})")
    if origin in (None, "null") and fetch_site is not None and fetch_site not in SAME_SITE_FETCH:
        raise FormRefused(403, "this request came from another site; nothing was changed",
                          f"cross-site {what} refused (Sec-Fetch-Site {fetch_site[:40]})")


async def _urlencoded(request: Request, what: str, max_fields: int) -> dict[str, list[str]]:
    try:
        return parse_qs((await request.body()).decode("utf-8"), max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise FormRefused(400, "this form could not be read; nothing was changed", f"{what} refused: malformed form") \
            from None
