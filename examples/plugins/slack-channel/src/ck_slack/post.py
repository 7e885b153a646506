"""One JSON POST to a webhook whose URL is itself the credential.

Incoming-webhook URLs carry their token in the path (``/services/T…/B…/<token>``), so campaignkit's HttpClient,
which logs failed attempts with the URL path, does not fit: here only scheme, host and port ever appear in a
message, and nothing is logged.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from campaignkit.core import tls_context

EXCERPT = 200


def origin(url: str) -> str:
    """What messages may show of the URL: scheme, host and port (the path and query may hold the token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


@dataclass(frozen=True)
class Answer:
    """Any HTTP answer, 2xx or not; header names are lower-cased."""

    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def excerpt(self) -> str:
        """The start of the body on one line, for one-line step errors."""
        return " ".join(self.body.decode("utf-8", "replace").split())[:EXCERPT]

    def retry_after_seconds(self, now: datetime | None = None) -> int | None:
        """Retry-After as seconds (it may be a number or an HTTP date); None when absent or unreadable."""
        value = self.headers.get("retry-after", "").strip()
        if value.isdigit():
            return int(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0, int((when - (now or datetime.now(UTC))).total_seconds()))


class Unreachable(Exception):
    """No HTTP answer came. ``temporary`` is False for certificate problems, which do not fix themselves."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A followed redirect would turn the POST into a GET and could carry the message elsewhere: surface the 3xx.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Poster:
    """Posts to one configured URL; thread-safe (the worker calls send from several threads)."""

    def __init__(self, url: str, *, ca_file: Path | None, timeout_seconds: float) -> None:
        self._url = url
        self.origin = origin(url)
        self.timeout_seconds = timeout_seconds
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=tls_context(ca_file)),
                                                   _NoRedirect())

    def post(self, body: bytes, headers: dict[str, str]) -> Answer:
        request = urllib.request.Request(self._url, data=body, method="POST", headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout_seconds) as response:
                return Answer(response.status, response.read(), _lower(response.headers.items()))
        except urllib.error.HTTPError as exc:
            try:
                content = exc.read() if exc.fp is not None else b""
            finally:
                exc.close()
            return Answer(exc.code, content, _lower(exc.headers.items() if exc.headers else []))
        except urllib.error.URLError as exc:
            # exc.reason is a socket or TLS error: it names no URL.
            certificate = isinstance(exc.reason, ssl.SSLError)
            raise Unreachable(f"could not reach {self.origin}: {_describe(exc.reason)}",
                              temporary=not certificate) from None
        except (OSError, http.client.HTTPException) as exc:  # a timeout or reset while reading the answer
            raise Unreachable(f"no answer from {self.origin}: {_describe(exc)}", temporary=True) from None


def _lower(items: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in items}


def _describe(reason: object) -> str:
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
