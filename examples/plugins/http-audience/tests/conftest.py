"""A small HR API for the tests, answered by campaignkit's ck_http receiver: paged employees behind a bearer token."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from campaignkit.core.testing import HttpReceiver, Seen

TOKEN = "hr-token-5f1c2a9e7d"
PREFIX = "/api/v1"


def path_of(seen: Seen) -> str:
    return urlsplit(seen.path).path


@dataclass
class HrApi:
    """``pages`` are served in order: page n links to n+1 with a ``next`` link, absolute then relative."""

    receiver: HttpReceiver
    pages: list[list[Any]]
    token: str = TOKEN
    next_links: dict[int, str] = field(default_factory=dict)  # page index -> a next link to serve instead

    def __post_init__(self) -> None:
        self.receiver.answer = self.answer

    @property
    def url(self) -> str:
        return self.receiver.url

    @property
    def seen(self) -> list[Seen]:
        return self.receiver.seen

    def answer(self, seen: Seen) -> tuple[int, bytes, dict[str, str]]:
        status, body = self._page(seen)
        return status, json.dumps(body).encode(), {"Content-Type": "application/json"}

    def _page(self, seen: Seen) -> tuple[int, Any]:
        authorization = seen.headers.get("Authorization")
        if authorization != f"Bearer {self.token}":
            # Echoes what it got, as some servers do, so the tests can check the plugin scrubs it.
            return 401, {"error": "invalid_token", "detail": f"rejected {authorization}"}
        if seen.method != "GET" or path_of(seen) != f"{PREFIX}/employees":
            return 404, {"error": "not_found"}
        index = int(seen.query.get("cursor", ["0"])[0])
        link: str | None = None
        if index + 1 < len(self.pages):
            # The first link is absolute, later ones relative: APIs do both.
            link = (f"{self.url}{PREFIX}/employees?cursor={index + 1}" if index == 0
                    else f"?cursor={index + 1}")
        link = self.next_links.get(index, link)
        return 200, {"items": self.pages[index], "next": link, "page": index + 1}


def employee(number: int, **extra: Any) -> dict[str, Any]:
    return {"employee_id": f"e{number}", "email": f"e{number}@example.org", "department": "Sales",
            "manager": {"email": "boss@example.org"}, **extra}


def three_pages() -> list[list[Any]]:
    return [[employee(1), employee(2), employee(3)], [employee(4), employee(5)], [employee(6), employee(7)]]


@pytest.fixture
def hr_api(ck_http: HttpReceiver) -> HrApi:
    return HrApi(ck_http, three_pages())


@pytest.fixture
def ck_settings(hr_api: HrApi) -> dict[str, Any]:
    return {"plugins": {"config": {"hris": {
        "base_url": f"{hr_api.url}{PREFIX}", "token": TOKEN, "page_size": 3, "timeout_seconds": 5, "retries": 0,
    }}}}
