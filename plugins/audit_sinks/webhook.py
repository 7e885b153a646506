"""webhook: POSTs audit records as a JSON batch over HTTPS, signed with HMAC-SHA256 over a timestamp and the body."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from campaignkit.core import (
    AuditSink,
    CaFile,
    HttpClient,
    HttpError,
    OutboundUrl,
    SigningSecret,
    signature_headers,
    user_agent,
)

from .base import SinkConfig

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

log = logging.getLogger(__name__)


class WebhookError(Exception):
    """A delivery that did not succeed; the message names the endpoint without credentials, never the secret."""


class WebhookConfig(SinkConfig):
    url: OutboundUrl = Field(description="The endpoint; https:// is required unless the host is a loopback address.")
    secret: SigningSecret = Field(description="The HMAC-SHA256 key shared with the receiver.")
    timeout_seconds: float = Field(default=10, gt=0, le=300, description="Per request: connect, send and answer.")
    retries: int = Field(default=2, ge=0, le=10, description="Extra attempts within one call on 5xx or no connection.")
    retry_backoff_seconds: float = Field(
        default=0.5, ge=0, le=30, description="First pause between in-call attempts; doubles each time."
    )
    batch_size: int = Field(default=500, ge=1, le=10000, description="Records per POST.")
    ca_file: CaFile = Field(default=None, description="PEM bundle of a private CA that signed the server.")



class WebhookSink(AuditSink):
    name = "webhook"
    Config = WebhookConfig
    config: WebhookConfig

    def __init__(self, config: WebhookConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        self._client = HttpClient(ca_file=config.ca_file, timeout_seconds=config.timeout_seconds,
                                  retries=config.retries, retry_backoff_seconds=config.retry_backoff_seconds)

    def emit(self, records: Sequence[Mapping[str, Any]]) -> None:
        size = self.config.batch_size
        for start in range(0, len(records), size):
            self._post(records[start:start + size])

    def _post(self, records: Sequence[Mapping[str, Any]]) -> None:
        body = json.dumps({"records": [dict(r) for r in records]}, ensure_ascii=False, separators=(",", ":"),
                          default=str).encode()
        signature = signature_headers(self.config.secret.get_secret_value().encode(), body)
        try:
            self._client.request("POST", self.config.url, body=body, sign=signature, headers={
                "Content-Type": "application/json", "User-Agent": user_agent()})
        except HttpError as exc:
            raise WebhookError(str(exc)) from None
