"""A small HR API on 127.0.0.1 for the tests: paged employees behind a bearer token, recording every request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

TOKEN = "hr-token-5f1c2a9e7d"
PREFIX = "/api/v1"


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class HrApi:
    """``pages`` are served in order: page n links to n+1 with a ``next`` link, absolute then relative."""

    pages: list[list[Any]]
    token: str = TOKEN
    seen: list[Seen] = field(default_factory=list)
    next_links: dict[int, str] = field(default_factory=dict)  # page index -> a next link to serve instead
    url: str = ""

    def answer(self, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, Any]:
        self.seen.append(Seen(path, query, headers))
        if headers.get("Authorization") != f"Bearer {self.token}":
            # Echoes what it got, as some servers do, so the tests can check the plugin scrubs it.
            return 401, {"error": "invalid_token", "detail": f"rejected {headers.get('Authorization')}"}
        if path != f"{PREFIX}/employees":
            return 404, {"error": "not_found"}
        index = int(query.get("cursor", ["0"])[0])
        link: str | None = None
        if index + 1 < len(self.pages):
            # The first link is absolute, later ones relative: APIs do both.
            link = (f"{self.url}{PREFIX}/employees?cursor={index + 1}" if index == 0
                    else f"?cursor={index + 1}")
        link = self.next_links.get(index, link)
        return 200, {"items": self.pages[index], "next": link, "page": index + 1}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        status, body = self.server.api.answer(parts.path, parse_qs(parts.query), dict(self.headers.items()))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: HrApi) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api


def employee(number: int, **extra: Any) -> dict[str, Any]:
    return {"employee_id": f"e{number}", "email": f"e{number}@example.org", "department": "Sales",
            "manager": {"email": "boss@example.org"}, **extra}


def three_pages() -> list[list[Any]]:
    return [[employee(1), employee(2), employee(3)], [employee(4), employee(5)], [employee(6), employee(7)]]


@pytest.fixture
def start_api() -> Iterator[Any]:
    """Start an HR API with given pages; every server stops when the test ends."""
    started: list[_Server] = []

    def start(pages: list[list[Any]]) -> HrApi:
        api = HrApi(pages)
        server = _Server(api)
        api.url = f"http://127.0.0.1:{server.server_port}"
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(server)
        return api

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hr_api(start_api: Any) -> HrApi:
    return start_api(three_pages())


@pytest.fixture
def ck_settings(hr_api: HrApi) -> dict[str, Any]:
    return {"plugins": {"config": {"hris": {
        "base_url": f"{hr_api.url}{PREFIX}", "token": TOKEN, "page_size": 3, "timeout_seconds": 5, "retries": 0,
    }}}}
