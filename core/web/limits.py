"""Pure ASGI middleware that runs before any route: header size, the API's bearer token, then body limits.

They decide on the request line and headers, so an unauthenticated or oversized request is answered before a byte
of its body is read or parsed (FastAPI reads and parses a JSON body before it runs a route's dependencies).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..accounts.roles import Access, Principal

if TYPE_CHECKING:
    from ..settings import Settings

# Refusals end the connection: whatever body the client is still sending is dropped with it, not read and discarded.
CLOSE = {"Connection": "close"}


class RejectionRecorder(Protocol):
    """Called, on a worker thread, for each refused API credential."""

    def __call__(self, client_ip: str | None, reason: str, method: str, path: str) -> None: ...


class RefusalRecorder(Protocol):
    """Called, on a worker thread, for each request a valid credential may not make (answered 403)."""

    def __call__(self, client_ip: str | None, user: str, reason: str, method: str, path: str) -> None: ...


def client_ip(request: Request) -> str | None:
    """The client's address as uvicorn gives it (the proxy's X-Forwarded-For only from web.trusted_proxies)."""
    return request.client.host if request.client else None


def is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


# Where a campaign definition is sent: the API takes it as the body, the console as a form (urlencoded, a pasted
# definition can be three times as long: %XX for each byte that is not a letter or digit; a file upload is not).
DEFINITION_API = re.compile(r"/api/campaigns(?:/[^/]+/definition)?")
DEFINITION_FORMS = re.compile(r"/campaigns/(?:new|[^/]+/definition)")


def body_limit(settings: Settings, path: str) -> int:
    """The largest body a request to ``path`` may send: web.max_api_body_bytes or web.max_form_body_bytes, but room
    for a definition of definitions.max_file_bytes where one is sent."""
    web, definition = settings.web, settings.definitions.max_file_bytes
    if is_api(path):
        return max(web.max_api_body_bytes, definition) if DEFINITION_API.fullmatch(path) else web.max_api_body_bytes
    return max(web.max_form_body_bytes, 3 * definition) if DEFINITION_FORMS.fullmatch(path) \
        else web.max_form_body_bytes


class BearerTokenGate:
    """Requests to the paths ``protects`` accepts need ``Authorization: Bearer <token>``, a token ``authenticate``
    turns into the account it acts for (401 otherwise, audited through ``on_rejected``). Reading (GET, HEAD) needs
    the read access every role has; anything else changes state and needs a write token of an operator or an admin
    (403 otherwise). The route sees the account as ``request.state.principal``."""

    def __init__(self, app: ASGIApp, authenticate: Callable[[str], Principal | None],
                 protects: Callable[[str], bool], on_rejected: RejectionRecorder,
                 on_refused: RefusalRecorder | None = None) -> None:
        self.app = app
        self.authenticate = authenticate
        self.protects = protects
        self.on_rejected = on_rejected
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.protects(scope["path"]):
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).get("authorization")
        scheme, _, token = (sent or "").partition(" ")
        # The lookup reads the database: keep it off the event loop.
        principal = await run_in_threadpool(self.authenticate, token.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            reason = "no Authorization header" if sent is None else "wrong bearer token"
            client = scope.get("client")
            await run_in_threadpool(self.on_rejected, client[0] if client else None, reason, scope["method"],
                                    scope["path"])
            await JSONResponse({"detail": "a valid bearer token is required"}, 401,
                               headers={**CLOSE, "WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        access = Access.READ if scope["method"] in READING else Access.OPERATE
        if not principal.allows(access):
            wanted = "change anything" if access is Access.OPERATE else access.value
            reason = f"{principal.role}, {principal.scope} token, may not {wanted}"
            detail = f"{principal.user_name} ({principal.role}, {principal.scope} token) may not {wanted}"
            if self.on_refused is not None:
                client = scope.get("client")
                await run_in_threadpool(self.on_refused, client[0] if client else None, principal.user_name, reason,
                                        scope["method"], scope["path"])
            await JSONResponse({"detail": detail}, 403, headers=CLOSE)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


READING = frozenset({"GET", "HEAD"})


class HeaderLimit:
    """Refuse a request whose line and headers pass ``max_bytes`` with 431.

    The transport's limit (web/transport.py, given the same setting) holds only while headers are incomplete:
    headers that arrive whole in one read (up to 256 KiB) pass it. This counts them once parsed.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _head_size(scope) > self.max_bytes:
            await JSONResponse({"detail": f"request headers too large: at most {self.max_bytes} bytes"}, 431,
                               headers=CLOSE)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    """Raised into the app by receive() once the body passes the limit; the 413 has been sent by then."""


class BodyLimit:
    """Refuse request bodies larger than ``limit_for(path)`` bytes with 413.

    A declared Content-Length over the limit is refused before the app runs; a chunked or undeclared body is
    counted as the app reads it, and the read that passes the limit answers 413 instead of returning data, so the
    app never holds more than the limit (uvicorn itself buffers at most its flow-control high-water mark, 64 KiB).
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(scope, receive, send, limit)
            return

        received = 0
        started = refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        refused = True
                        await _too_large(scope, receive, send, limit)
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's own answer to the exception (400, 500) after the 413 that already went out
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _BodyTooLarge:
            if not refused:
                raise  # the app had begun its answer before reading on: uvicorn aborts the connection


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    await JSONResponse({"detail": f"request body too large: at most {limit} bytes"}, 413,
                       headers=CLOSE)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None  # the parser refuses a malformed length before the app sees the request; count the body instead


def _head_size(scope: Scope) -> int:
    # The request as sent, give or take spaces: "METHOD target?query HTTP/1.1\r\n", then "name: value\r\n" each.
    target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"]) + 1
    return len(scope["method"]) + target + 11 + sum(len(name) + len(value) + 4 for name, value in scope["headers"])
