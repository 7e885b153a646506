"""Opaque, signed keyset cursors for the API's listings (the audit trail, campaigns, a campaign's runs).

A cursor holds a position (the sort values and id of a page's last row, as JSON) and a digest of what the listing
was read with (its filters and order), signed with the installation's secret key. A cursor that was tampered with, cut
short, made for another listing or sent with other filters is refused (400) rather than misread. Each listing has a
salt of its own, so a campaigns cursor is no runs cursor. `next_link` writes the RFC 8288 ``Link`` header (and
``X-Next-Cursor``) that the listings whose body is a bare JSON list carry their next page in."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from fastapi import HTTPException, Request, Response
from itsdangerous import BadData, URLSafeSerializer

if TYPE_CHECKING:
    from ..runtime import Runtime

T = TypeVar("T")
NOT_OURS = ("cursor: not a cursor this API gave (altered or cut short); send the next page's cursor exactly as it was "
            "given, or no cursor for the first page")
OTHER_FILTERS = ("cursor: it was given for other filters or another order; send the same filters and sort as the "
                 "request that returned it, or no cursor to start again")


class Cursors:
    """Signed cursors of one listing (``purpose``: ``audit``, ``campaigns``, ``runs``)."""

    def __init__(self, runtime: Runtime, purpose: str) -> None:
        settings = runtime.settings
        keys = [key.get_secret_value() for key in (*settings.previous_secret_keys, settings.secret_key) if key]
        # Without a secret_key (a deployment `campaignkit init` did not set up), cursors hold within this process.
        self._serializer = URLSafeSerializer(keys or [os.urandom(32).hex()], salt=f"campaignkit.cursor.{purpose}",
                                             signer_kwargs={"digest_method": hashlib.sha256})

    @staticmethod
    def _digest(context: object) -> str:
        return hashlib.sha256(repr(context).encode()).hexdigest()[:16]

    def make(self, position: Any, context: object) -> str:
        """A cursor for the page after ``position`` (JSON-serialisable), read under ``context`` (filters, order)."""
        return str(self._serializer.dumps([position, self._digest(context)]))

    def read(self, cursor: str, context: object, shape: Callable[[Any], T]) -> T:
        """The position in ``cursor``, as ``shape`` makes it (a ValueError, TypeError or KeyError there: not ours);
        400 when the cursor is not one this API gave or was given under another ``context``."""
        try:
            position, digest = self._serializer.loads(cursor)
        except (BadData, ValueError, TypeError):
            raise HTTPException(400, NOT_OURS) from None
        if not hmac.compare_digest(str(digest), self._digest(context)):
            raise HTTPException(400, OTHER_FILTERS)
        try:
            return shape(position)
        except (ValueError, TypeError, KeyError, IndexError):
            raise HTTPException(400, NOT_OURS) from None


def next_link(request: Request, response: Response, cursor: str | None) -> None:
    """Point ``response`` at the next page: ``Link: <same path and query, with this cursor>; rel="next"`` (RFC 8288,
    a relative reference) and ``X-Next-Cursor``; neither on the last page. ``offset`` is dropped from the link."""
    if cursor is None:
        return
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "offset")]
    target = f"{request.url.path}?{urlencode([*params, ('cursor', cursor)])}"
    response.headers["Link"] = f'<{target}>; rel="next"'
    response.headers["X-Next-Cursor"] = cursor
