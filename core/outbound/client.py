"""Outbound HTTP for plugins (webhooks, inventories, directories): checked URLs, TLS, one request with retries.

Plugins import from here rather than each carrying its own urllib plumbing; nothing here logs a secret, a query string
or credentials in a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import logging
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, SecretStr

log = logging.getLogger(__name__)

# Worth another try within a call: the receiver is busy or restarting. Other statuses are the caller's to judge.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
EXCERPT = 200
# Signed requests (audit webhook, enforcement webhook): HMAC-SHA256 over a timestamp and the body.
SIGNATURE_HEADER = "X-Campaignkit-Signature"
TIMESTAMP_HEADER = "X-Campaignkit-Timestamp"
MIN_SECRET_LENGTH = 16


def user_agent() -> str:
    try:
        return f"campaignkit/{version('campaignkit')}"
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "campaignkit"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value: the timestamp is signed too, so a captured request cannot be replayed later."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_headers(secret: bytes, body: bytes) -> Callable[[], Mapping[str, str]]:
    """For HttpClient.request(sign=...): a fresh timestamp and signature on every attempt."""

    def headers() -> Mapping[str, str]:
        # Wall-clock seconds, not the runtime's clock: the receiver checks freshness against its own clock.
        timestamp = str(int(time.time()))
        return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}

    return headers


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_outbound_url(value: str) -> str:
    """An absolute https:// URL; plain http:// only for loopback hosts (tests, a local relay)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute https:// URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("must use https:// (plain http:// is allowed only for loopback hosts)")
    return value


def check_readable_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        raise ValueError(f"no such file: {value}")
    return value


def check_signing_secret(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
    return value


# For plugin config models: `url: OutboundUrl`, `ca_file: CaFile = None`, `secret: SigningSecret`.
OutboundUrl = Annotated[str, AfterValidator(check_outbound_url)]
CaFile = Annotated[Path | None, AfterValidator(check_readable_file)]
SigningSecret = Annotated[SecretStr, AfterValidator(check_signing_secret)]


def redacted(url: str) -> str:
    """The URL for messages and logs: no user:password@ and no query string (either may carry a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


def tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """Certificate checks on, against the system's CAs or a private CA's PEM bundle."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without the body and report success: treat it as a failure.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str]


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now; None when absent or unreadable."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HttpError(Exception):
    """A request that got no 2xx answer; ``status`` is None when no answer came. Messages carry no secrets."""

    def __init__(self, message: str, status: int | None = None, body: bytes = b"", *,
                 temporary: bool | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.retry_after = retry_after  # seconds the receiver asked to wait (Retry-After), if it did
        # Worth retrying later: no answer, a busy receiver or a server error.
        self.temporary = temporary if temporary is not None else (
            status is None or status in RETRY_STATUSES or status >= 500)

    @property
    def excerpt(self) -> str:
        """The start of the receiver's answer, on one line (it ends up in one-line errors and step details)."""
        return " ".join(self.body.decode("utf-8", "replace").split())[:EXCERPT]


class HttpClient:
    """One client per configured endpoint: a TLS context built once, redirects refused, retries with backoff."""

    def __init__(self, *, ca_file: Path | None = None, timeout_seconds: float = 10, retries: int = 0,
                 retry_backoff_seconds: float = 0.5) -> None:
        self.timeout_seconds = timeout_seconds
        self.retries = retries
        self.retry_backoff_seconds = retry_backoff_seconds
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=tls_context(ca_file)),
                                                   _NoRedirect())

    def request(self, method: str, url: str, *, body: bytes | None = None,
                headers: Mapping[str, str] | None = None,
                sign: Callable[[], Mapping[str, str]] | None = None) -> Response:
        """Send, retrying within the call on no answer or a retry status; raise HttpError when it never succeeds.

        ``sign``, if given, is called before each attempt and returns extra headers (a fresh timestamp and signature).
        """
        where = redacted(url)
        problem = HttpError(f"{where}: not attempted")
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.retry_backoff_seconds * 2 ** (attempt - 1))
            all_headers = {**(headers or {}), **(sign() if sign is not None else {})}
            request = urllib.request.Request(url, data=body, method=method, headers=all_headers)
            try:
                with self._opener.open(request, timeout=self.timeout_seconds) as answer:
                    return Response(answer.status, answer.read(), dict(answer.headers.items()))
            except urllib.error.HTTPError as exc:
                content = exc.read() if exc.fp is not None else b""
                exc.close()
                wait = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
                problem = HttpError(f"{where} answered HTTP {exc.code}", exc.code, content, retry_after=wait)
                if exc.code not in RETRY_STATUSES or wait is not None:
                    break  # refused, or asked to wait: another attempt now would only be refused again
            except urllib.error.URLError as exc:
                # A certificate problem does not fix itself in a second.
                certificate = isinstance(exc.reason, ssl.SSLError)
                problem = HttpError(f"{where}: {exc.reason}", temporary=not certificate)
                if certificate:
                    break
            except (OSError, http.client.HTTPException) as exc:  # timeouts, resets mid-response
                problem = HttpError(f"{where}: {type(exc).__name__}: {exc}")
            log.info("HTTP attempt %d of %d failed: %s", attempt + 1, self.retries + 1, problem)
        raise problem
