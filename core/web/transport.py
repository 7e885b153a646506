"""How uvicorn serves the web app: connection, header and proxy limits from the web settings, in one place that
`campaignkit serve` and the tests share."""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..settings import WebSettings


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for a request's line and headers.

    uvicorn's own timeout_keep_alive only runs between requests and stops at the first byte, so a client sending
    headers one byte a minute (or nothing at all on a new connection) would hold the connection for ever. The
    deadline starts when the connection opens and again when a response completes, and is not moved by bytes that
    arrive: only complete headers stop it.
    """

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _watch_headers(self) -> None:
        # IDLE: the next request's headers are not complete yet. Any other state (body, response, closed) stops it.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)
        else:
            self._stop_header_timer()

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def protocol_with_header_timeout(seconds: float) -> type[HeaderTimeoutProtocol]:
    """uvicorn builds the protocol itself from the class it is given, so the deadline travels as a class attribute."""

    class Protocol(HeaderTimeoutProtocol):
        header_timeout = seconds

    return Protocol


def uvicorn_config(app: ASGIApp, web: WebSettings, *, host: str | None = None, port: int | None = None,
                   log_level: str = "info") -> uvicorn.Config:
    """The server for ``app`` with the transport limits of ``web``; host and port default to web.host, web.port."""
    return uvicorn.Config(
        app, host=host or web.host, port=port or web.port, log_level=log_level, access_log=False,
        # h11 only: its header size limit and the header deadline above do not exist for httptools.
        http=protocol_with_header_timeout(web.header_timeout_seconds), ws="none",
        h11_max_incomplete_event_size=web.max_header_bytes, limit_concurrency=web.max_connections,
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise, so anything on the host could pick
        # the client address written to audit records: believe it only from the configured proxies.
        proxy_headers=bool(web.trusted_proxies), forwarded_allow_ips=list(web.trusted_proxies),
    )
