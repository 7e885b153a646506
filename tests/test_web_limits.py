"""The web app's transport limits, against the app served for real by uvicorn on 127.0.0.1 with the settings
`campaignkit serve` applies: body sizes, the API's token before any body is read, header size and deadline, the
connection limit, trusted proxies, and /openapi.json behind the token."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from servers import serving
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from test_web import TOKEN, auth

from campaignkit.core.db.schema import audit_history
from campaignkit.core.errors import ConfigurationError
from campaignkit.core.settings import load_settings
from campaignkit.core.web import create_app
from campaignkit.core.web.limits import BodyLimit

MiB = 1024 * 1024
FORM_LIMIT = 8 * 1024  # the default web.max_form_body_bytes
API_LIMIT = 64 * 1024  # the default web.max_api_body_bytes
FORGED = "/review/forged-token"  # a decision link nobody signed: the limits answer before it is looked at


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The transport does not depend on the database: these tests run on SQLite only."""
    return f"sqlite:///{tmp_path / 'campaignkit.db'}"


@contextmanager
def connection(url: str, timeout: float = 5) -> Iterator[socket.socket]:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        yield sock


def request_head(method: str, path: str, *headers: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]).encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection without answering (after {data!r})"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def bytes_accepted(sock: socket.socket, total: int, chunk: bytes = b"a" * 65536) -> int:
    """Stream up to ``total`` bytes; how many went out before the server's closing the connection stopped us."""
    sent = 0
    try:
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:  # broken pipe or reset: the server closed the connection rather than read on
        pass
    return sent


def closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float | None:
    """Seconds until the server closes ``sock`` (sending ``trickle`` every 0.2 s meanwhile), None if it did not."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < seconds:
        try:
            if trickle:
                sock.sendall(trickle)
            if sock.recv(1024) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - start
    return None


def login_failures(runtime: Any) -> list[Any]:
    with runtime.engine.connect() as conn:
        return list(conn.execute(select(audit_history).where(audit_history.c.audit_sub_type == "Login Failed")
                                 .order_by(audit_history.c.audit_id)))


# --- body limits ---------------------------------------------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(make_runtime: Any) -> None:
    with serving(create_app(make_runtime())) as url, connection(url) as sock:
        sock.sendall(request_head("POST", FORGED, "Content-Type: application/x-www-form-urlencoded",
                                  f"Content-Length: {200 * MiB}"))
        started = time.monotonic()
        status, headers, body = read_response(sock)  # not a byte of the body sent: the answer did not wait for it
        assert (status, headers["connection"]) == (413, "close")
        assert f"at most {FORM_LIMIT} bytes" in json.loads(body)["detail"]
        assert time.monotonic() - started < 2
        # The server closed the connection instead of reading and discarding 200 MiB: the stream stops at once,
        # after at most what the kernel's socket buffers absorb.
        assert bytes_accepted(sock, 200 * MiB) < 16 * MiB


def test_a_chunked_body_is_cut_with_413_at_the_limit(make_runtime: Any) -> None:
    with serving(create_app(make_runtime())) as url, connection(url) as sock:
        sock.sendall(request_head("POST", FORGED, "Content-Type: application/x-www-form-urlencoded",
                                  "Transfer-Encoding: chunked"))
        for _ in range(2 * FORM_LIMIT // 1024):
            bytes_accepted(sock, 1, b"400\r\n" + b"a" * 1024 + b"\r\n")
        status, _, body = read_response(sock)
    assert status == 413 and f"at most {FORM_LIMIT} bytes" in json.loads(body)["detail"]


def test_the_app_never_receives_more_than_the_limit(make_runtime: Any) -> None:
    seen: list[int] = []

    async def read_all(request: Request) -> PlainTextResponse:
        async for chunk in request.stream():
            seen.append(len(chunk))
        return PlainTextResponse("read all")

    probe = Starlette(routes=[Route("/", read_all, methods=["POST"])],
                      middleware=[Middleware(BodyLimit, limit_for=lambda path: 4096)])

    def chunks(size: int) -> Iterator[bytes]:  # no Content-Length: httpx sends these chunked
        for _ in range(size // 512):
            yield b"a" * 512
            time.sleep(0.001)  # several reads on the server, so the count spans messages

    with serving(probe) as url:
        assert httpx.post(f"{url}/", content=chunks(4096)).text == "read all" and sum(seen) == 4096
        seen.clear()
        assert httpx.post(f"{url}/", content=chunks(64 * 1024)).status_code == 413
    assert sum(seen) <= 4096


# --- the API: the token before the body ----------------------------------------------------------------------------


def test_an_unauthenticated_api_body_is_refused_before_it_is_read_or_parsed(make_runtime: Any) -> None:
    runtime = make_runtime(api_token=TOKEN)
    with serving(create_app(runtime)) as url:
        malformed = httpx.post(f"{url}/api/runs/1/events", content=b"{not json",
                               headers={"Content-Type": "application/json"})
        assert malformed.status_code == 401 and malformed.headers["www-authenticate"] == "Bearer"  # not 422
        with connection(url) as sock:  # a large body declared, none sent: the 401 does not wait for it
            sock.sendall(request_head("POST", "/api/runs/1/events", "Content-Type: application/json",
                                      f"Content-Length: {100 * MiB}", "Authorization: Bearer wrong"))
            assert read_response(sock)[0] == 401
    rows = login_failures(runtime)
    assert [r.details for r in rows] == ["API token rejected: no Authorization header (POST /api/runs/1/events)",
                                         "API token rejected: wrong bearer token (POST /api/runs/1/events)"]
    assert {(r.audit_type, r.user_name, r.computer_ip) for r in rows} == {("System Access", "anonymous", "127.0.0.1")}


def test_an_authenticated_api_body_over_the_api_limit_gets_413(make_runtime: Any, actor: Any, tmp_path: Any) -> None:
    from conftest import Harness

    big = {"name": "clicked", "payload": {"blob": "a" * API_LIMIT}}
    harness = Harness(make_runtime(), actor, tmp_path)
    write = auth(harness.api_token("operator", "write"))
    with serving(create_app(harness.runtime)) as url:
        declared = httpx.post(f"{url}/api/runs/1/events", json=big, headers=write)
        assert declared.status_code == 413 and f"at most {API_LIMIT} bytes" in declared.json()["detail"]
        streamed = httpx.post(f"{url}/api/runs/1/events", content=iter([json.dumps(big).encode()]),
                              headers={**write, "Content-Type": "application/json"})
        assert streamed.status_code == 413
        # Within the limit the body reaches the route as before (no such run here).
        assert httpx.post(f"{url}/api/runs/999/events", json={"name": "clicked"}, headers=write).status_code == 404


def test_refused_tokens_go_to_the_recorder_given(make_runtime: Any) -> None:
    calls: list[tuple[str | None, str, str, str]] = []
    runtime = make_runtime(api_token=TOKEN)
    app = create_app(runtime, on_api_rejected=lambda *call: calls.append(call))
    with serving(app) as url:
        assert httpx.get(f"{url}/api/campaigns", headers=auth("x" * 40)).status_code == 401
    assert calls == [("127.0.0.1", "wrong bearer token", "GET", "/api/campaigns")]
    assert login_failures(runtime) == []  # the default recorder replaced, not doubled


def test_the_openapi_description_needs_the_token(make_runtime: Any) -> None:
    with serving(create_app(make_runtime(api_token=TOKEN))) as url:
        assert httpx.get(f"{url}/openapi.json").status_code == 401
        described = httpx.get(f"{url}/openapi.json", headers=auth())
        assert described.status_code == 200 and "/api/runs/{run_id}/events" in described.json()["paths"]
        assert httpx.get(f"{url}/docs").status_code == 404 and httpx.get(f"{url}/redoc").status_code == 404


# --- connections and headers ---------------------------------------------------------------------------------------


def test_slow_headers_are_cut_off_while_others_are_served(make_runtime: Any) -> None:
    with serving(create_app(make_runtime(web={"header_timeout_seconds": 1}))) as url:
        with connection(url) as silent, connection(url) as slow:
            slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            # A request line and headers that take too long, one byte every 0.2 s: closed at the deadline, which
            # the bytes do not move; meanwhile another connection is served.
            assert httpx.get(f"{url}/health").status_code == 200
            elapsed = closed_within(slow, 5, trickle=b"a")
            assert elapsed is not None and elapsed < 3
            assert closed_within(silent, 2) is not None  # opened as long ago and never sent a byte
        with connection(url) as idle:
            elapsed = closed_within(idle, 5)
            assert elapsed is not None and 0.5 < elapsed < 3
        with connection(url) as kept:  # after a complete response the deadline starts again for the next request
            kept.sendall(request_head("GET", "/health"))
            assert read_response(kept)[0] == 200
            kept.sendall(b"GET /health HTTP/1.1\r\n")
            elapsed = closed_within(kept, 5)
            assert elapsed is not None and 0.5 < elapsed < 3  # uvicorn's own keep-alive timeout would take 5 s


def test_connections_beyond_the_limit_are_answered_503(make_runtime: Any) -> None:
    with serving(create_app(make_runtime(web={"max_connections": 3}))) as url:
        with connection(url), connection(url), connection(url):
            time.sleep(0.3)  # the server has accepted them
            assert httpx.get(f"{url}/health").status_code == 503
        deadline = time.monotonic() + 5
        while httpx.get(f"{url}/health").status_code != 200:
            assert time.monotonic() < deadline, "the server still counts the closed connections"
            time.sleep(0.1)


def test_request_headers_over_the_limit_are_refused(make_runtime: Any) -> None:
    with serving(create_app(make_runtime(web={"max_header_bytes": 4096}))) as url:
        assert httpx.get(f"{url}/health", headers={"X-Big": "a" * 1024}).status_code == 200
        # 431 when the headers arrive in one read (the app checks them), 400 when h11 meets them incomplete.
        assert httpx.get(f"{url}/health", headers={"X-Big": "a" * 8192}).status_code == 431
        with connection(url) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 8192)
            assert read_response(sock)[0] == 400
    with serving(create_app(make_runtime())) as url:  # the default
        assert httpx.get(f"{url}/health", headers={"X-Big": "a" * 64 * 1024}).status_code in (400, 431)


# --- trusted proxies -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("trusted", "recorded"), [(None, "127.0.0.1"), (["127.0.0.1"], "203.0.113.9"),
                                                   (["10.0.0.0/8"], "127.0.0.1")])
def test_x_forwarded_for_is_believed_only_from_trusted_proxies(make_runtime: Any, trusted: list[str] | None,
                                                               recorded: str) -> None:
    # By default (None) not even from the host itself: anything running there could pick the audited address.
    runtime = make_runtime(api_token=TOKEN, web={} if trusted is None else {"trusted_proxies": trusted})
    with serving(create_app(runtime)) as url:
        response = httpx.get(f"{url}/api/campaigns", headers={**auth("y" * 40), "X-Forwarded-For": "203.0.113.9"})
        assert response.status_code == 401
    (row,) = login_failures(runtime)
    assert row.computer_ip == recorded


def test_a_trusted_proxy_must_be_an_address_or_network() -> None:
    with pytest.raises(ConfigurationError, match=r"web\.trusted_proxies\.0: .*not an IP address"):
        load_settings(web={"trusted_proxies": ["proxy.example.org"]})
