"""How uvicorn serves the web app: connection, header and proxy limits from the web settings, in one place that
`campaignkit serve` and the tests share.

HTTP is parsed by httptools (llhttp, in C) on uvloop: h11, in pure Python, cost about 100 µs of CPU a request
here, a third of what a tracking hit costs in all. uvicorn gives httptools neither a deadline for a request's
headers nor a bound on them while they are incomplete, so the protocol below adds both.
"""

from __future__ import annotations

import asyncio

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..settings import WebSettings


class GuardedHeadersProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for a request's line and headers, and a bound on their size.

    uvicorn's own timeout_keep_alive only runs between requests and stops at the first byte, so a client sending
    headers one byte a minute (or nothing at all on a new connection) would hold the connection for ever. The
    deadline starts when the connection opens and again when a response completes, and is not moved by bytes that
    arrive: only complete headers stop it. While headers are incomplete, more than ``max_header_bytes`` of them
    is answered 400 and the connection closed (complete headers are checked by the app's HeaderLimit: 431).
    """

    header_timeout: float = 10.0
    max_header_bytes: int = 16384
    _header_timer: asyncio.TimerHandle | None = None
    _awaiting_headers = True  # the next request's headers are not complete yet
    _header_bytes = 0  # received since they began

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._awaiting_headers and self._header_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._stop_header_timer()
            self.send_400_response("Request headers too large.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True

    def on_headers_complete(self) -> None:
        self._awaiting_headers, self._header_bytes = False, 0
        self._stop_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.pipeline and not self.transport.is_closing():  # a pipelined request's headers are complete
            self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._awaiting_headers = True
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(web: WebSettings) -> type[GuardedHeadersProtocol]:
    """uvicorn builds the protocol itself from the class it is given, so the limits travel as class attributes."""

    class Protocol(GuardedHeadersProtocol):
        header_timeout = web.header_timeout_seconds
        max_header_bytes = web.max_header_bytes

    return Protocol


def uvicorn_config(app: ASGIApp, web: WebSettings, *, host: str | None = None, port: int | None = None,
                   log_level: str = "info") -> uvicorn.Config:
    """The server for ``app`` with the transport limits of ``web``; host and port default to web.host, web.port."""
    return uvicorn.Config(
        app, host=host or web.host, port=port or web.port, log_level=log_level, access_log=False,
        http=guarded_protocol(web), loop="auto", ws="none",  # auto: uvloop where it is installed (not Windows)
        limit_concurrency=web.max_connections,
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise, so anything on the host could pick
        # the client address written to audit records: believe it only from the configured proxies.
        proxy_headers=bool(web.trusted_proxies), forwarded_allow_ips=list(web.trusted_proxies),
    )
