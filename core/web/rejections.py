"""Refused requests (forged links, wrong API tokens) are audited without letting a flood grow the audit trail.

Per client address and window (``web.rejection_window_seconds``): the first refusal for each reason is written at
once, the same refusal again is only counted, and one record with the count is written when the window closes. A
client refused ``web.max_rejections_per_window`` times is answered 429 for every link and API request until its
window ends, so guessing links or tokens costs a request a window, not a database write each.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..audit import Actor, AuditSubType, AuditType, record
from ..db import writing

if TYPE_CHECKING:
    from ..runtime import Runtime

MAX_CLIENTS = 10_000  # past this many addresses in one window, the rest share one counter
OTHER_CLIENTS = "(other addresses)"


@dataclass
class _Window:
    started: datetime
    total: int = 0
    # (audit type, sub-type, what, reason, user) -> refusals since the first, which was written at once
    unwritten: dict[tuple[str, str, str, str, str], int] = field(default_factory=dict)
    last_detail: dict[tuple[str, str, str, str, str], str] = field(default_factory=dict)


class Rejections:
    """Shared by the web app's routes and middleware; thread-safe (sync routes run on a thread pool)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings.web
        self.window = timedelta(seconds=settings.rejection_window_seconds)
        self.limit = settings.max_rejections_per_window
        self._clients: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def allowed(self, client: str | None) -> bool:
        """False while this client is over its limit: answer 429 without looking at the request. Memory only, so
        it can run on the event loop; closed windows are written by ``flush``."""
        now = self.runtime.clock.now()
        with self._lock:
            window = self._clients.get(self._key(client))
            return window is None or window.total < self.limit or now - window.started >= self.window

    def reject(self, client: str | None, sub_type: AuditSubType | str, what: str, reason: str, detail: str = "",
               user: str = "anonymous", audit_type: AuditType | str = AuditType.SECURITY,
               throttled: bool = True) -> None:
        """Audit one refusal: ``what`` names the kind of request (e.g. "review link"), ``reason`` why it was refused
        (refusals are coalesced by it), ``detail`` what was asked (e.g. the method and path). None of them may
        contain the credential that was sent; ``user`` who was refused, when a valid link names them; ``throttled``
        whether it counts towards the client's limit. Writes to the database: call it off the event loop."""
        self.flush()
        now = self.runtime.clock.now()
        key = self._key(client)
        with self._lock:
            if key not in self._clients and len(self._clients) >= MAX_CLIENTS:
                key = OTHER_CLIENTS
            window = self._clients.setdefault(key, _Window(started=now))
            window.total += throttled
            kind = (str(audit_type), str(sub_type), what, reason, user)
            first = kind not in window.unwritten
            window.unwritten[kind] = window.unwritten.get(kind, -1) + 1
            window.last_detail[kind] = detail
        if first:
            self._write(key, kind, now, f"{what} rejected: {reason}" + (f" ({detail})" if detail else ""))

    def flush(self, everything: bool = False) -> int:
        """Write the counts of windows that have closed (all of them with ``everything``, at shutdown)."""
        now = self.runtime.clock.now()
        with self._lock:
            closed = {client: window for client, window in self._clients.items()
                      if everything or now - window.started >= self.window}
            for client in closed:
                del self._clients[client]
        written = 0
        for client, window in closed.items():
            for kind, count in window.unwritten.items():
                if count:
                    _, _, what, reason, _ = kind
                    last = window.last_detail[kind]
                    self._write(client, kind, now,
                                f"{what} rejected {count} more time(s) from this address between "
                                f"{window.started.isoformat(timespec='seconds')} and "
                                f"{now.isoformat(timespec='seconds')}: {reason}" + (f" (last: {last})" if last else ""))
                    written += 1
        return written

    @staticmethod
    def _key(client: str | None) -> str:
        return client or "unknown"

    def api_recorder(self, client_ip: str | None, reason: str, method: str, path: str) -> None:
        """For the API's bearer-token gate: a refused credential is a failed log-in, coalesced like the rest."""
        self.reject(client_ip, AuditSubType.LOGIN_FAILED, "API token", reason, f"{method} {path}",
                    audit_type=AuditType.SYSTEM_ACCESS)

    def refused(self, client_ip: str | None, user: str, reason: str, method: str, path: str,
                what: str = "API request") -> None:
        """An account asked for what its role or token may not do (answered 403): audited as that account,
        coalesced per client like every refusal."""
        # Not throttled: the account is known and answered 403 each time; only guessing credentials earns a 429.
        self.reject(client_ip, AuditSubType.ACCESS_DENIED, what, reason, f"{method} {path}", user=user,
                    throttled=False)

    def _write(self, client: str, kind: tuple[str, str, str, str, str], at: datetime, details: str) -> None:
        audit_type, sub_type, _, _, user = kind
        ip = None if client in ("unknown", OTHER_CLIENTS) else client
        with writing(self.runtime.engine) as conn:
            record(conn, actor=Actor(user, None, ip), audit_type=audit_type, sub_type=sub_type, at=at, code=self,
                   details=details)


# Besides the campaign kinds' link pages (CampaignKind.link_paths).
THROTTLED = ("/api/", "/openapi.json", "/sign-in")


class Throttle:
    """ASGI middleware: a client over its refusal limit gets 429 on the API and the kinds' link pages, before
    anything else (a signature check, a token comparison, a database write) is spent on it."""

    def __init__(self, app: ASGIApp, rejections: Rejections, link_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.rejections = rejections
        self.paths = THROTTLED + link_paths
        self.retry_after = str(int(rejections.window.total_seconds()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.paths):
            client = scope.get("client")
            if not self.rejections.allowed(client[0] if client else None):
                response = PlainTextResponse("too many refused requests from your address; try again later", 429,
                                             headers={"Retry-After": self.retry_after, "Connection": "close"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


@asynccontextmanager
async def flushing(rejections: Rejections) -> AsyncIterator[None]:
    """While the web app runs, write closed windows' counts as they close, and all of them when it stops."""

    async def every_window() -> None:
        while True:
            await asyncio.sleep(min(rejections.window.total_seconds(), 60))
            await run_in_threadpool(rejections.flush)

    task = asyncio.create_task(every_window())
    try:
        yield
    finally:
        task.cancel()
        await run_in_threadpool(rejections.flush, True)
