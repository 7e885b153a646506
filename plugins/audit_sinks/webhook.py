"""webhook: POSTs audit records as a JSON batch over HTTPS, signed with HMAC-SHA256 over a timestamp and the body."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from campaignkit.core import AuditSink, __version__

from .base import SinkConfig

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Campaignkit-Signature"
TIMESTAMP_HEADER = "X-Campaignkit-Timestamp"
MIN_SECRET_LENGTH = 16
# Worth another try within the call: the receiver is busy or restarting. Other statuses wait for the dispatcher.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookError(Exception):
    """A delivery that did not succeed; the message names the endpoint without credentials, never the secret."""


class WebhookConfig(SinkConfig):
    url: str = Field(description="The endpoint; https:// is required unless the host is a loopback address.")
    secret: SecretStr = Field(description="The HMAC-SHA256 key shared with the receiver.")
    timeout_seconds: float = Field(default=10, gt=0, le=300, description="Per request: connect, send and answer.")
    retries: int = Field(default=2, ge=0, le=10, description="Extra attempts within one call on 5xx or no connection.")
    retry_backoff_seconds: float = Field(
        default=0.5, ge=0, le=30, description="First pause between in-call attempts; doubles each time."
    )
    batch_size: int = Field(default=500, ge=1, le=10000, description="Records per POST.")
    ca_file: Path | None = Field(default=None, description="PEM bundle of a private CA that signed the server.")

    @field_validator("url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an absolute https:// URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("must use https:// (plain http:// is allowed only for loopback hosts)")
        return value

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value: the timestamp is signed too, so a captured request cannot be replayed later."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without the body and report success: treat it as a failure.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookSink(AuditSink):
    name = "webhook"
    Config = WebhookConfig
    config: WebhookConfig

    def __init__(self, config: WebhookConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect())
        parts = urlsplit(config.url)
        # For messages: no user:password@ and no query string (either may carry a token).
        self._where = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"

    def emit(self, records: Sequence[Mapping[str, Any]]) -> None:
        size = self.config.batch_size
        for start in range(0, len(records), size):
            self._post(records[start:start + size])

    def _post(self, records: Sequence[Mapping[str, Any]]) -> None:
        body = json.dumps({"records": [dict(r) for r in records]}, ensure_ascii=False, separators=(",", ":"),
                          default=str).encode()
        secret = self.config.secret.get_secret_value().encode()
        problem = ""
        for attempt in range(self.config.retries + 1):
            if attempt:
                time.sleep(self.config.retry_backoff_seconds * 2 ** (attempt - 1))
            # Wall-clock seconds, not the runtime's clock: the receiver checks freshness against its own clock.
            timestamp = str(int(time.time()))
            request = urllib.request.Request(self.config.url, data=body, method="POST", headers={
                "Content-Type": "application/json",
                "User-Agent": f"campaignkit/{__version__}",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(secret, timestamp, body),
            })
            try:
                with self._opener.open(request, timeout=self.config.timeout_seconds) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                exc.close()
                problem = f"{self._where} answered HTTP {exc.code}"
                if exc.code not in RETRY_STATUSES:
                    break
            except urllib.error.URLError as exc:
                problem = f"{self._where}: {exc.reason}"
                if isinstance(exc.reason, ssl.SSLError):
                    break  # a certificate problem does not fix itself in a second
            except (OSError, http.client.HTTPException) as exc:  # timeouts, resets mid-response
                problem = f"{self._where}: {type(exc).__name__}: {exc}"
            log.info("audit webhook attempt %d of %d failed: %s", attempt + 1, self.config.retries + 1, problem)
        raise WebhookError(problem)
