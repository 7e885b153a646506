"""The campaign's e-mail goes to campaignkit's ck_smtp inbox; the web app is served by uvicorn on 127.0.0.1, at the
port its links point to (web.base_url)."""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
import uvicorn

from campaignkit.core.testing import SmtpInbox, free_port

DEFINITION = """
name: Acceptable use 2030
kind: attestation
audience:
  source: csv                 # the file is given at launch; one run per address (the kind's audience key)
schedule:
  end_after: P14D             # the cycle closes two weeks after launch; links expire then
settings:
  channel: smtp
  policy:
    title: Acceptable use policy
    url: https://intranet.example.org/policies/acceptable-use
    text: |
      Company devices are for work.

      Report lost devices at once.
  remind_every: P3D
  reminders: 1
"""

AUDIENCE = "email,name\nada@example.org,Ada\ngrace@example.org,Grace\nalan@example.org,Alan\n"


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def ck_settings(ck_smtp: SmtpInbox, port: int) -> dict[str, Any]:
    return {
        "plugins": {"config": {"smtp": ck_smtp.channel_config()}},
        "web": {"base_url": f"http://127.0.0.1:{port}"},
    }


@pytest.fixture
def served(ck_runtime: Any, port: int) -> Iterator[str]:
    """campaignkit's web app on ck_runtime, with every kind's routes, served on 127.0.0.1 for the test."""
    from campaignkit.core import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(ck_runtime), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the web server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class Answer:
    status: int
    body: str
    headers: dict[str, str]  # names in lower case


def fetch(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
    """GET (or POST ``data``) without following anything; any status is an answer, not an exception."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, response.read().decode(), _lower(response.headers))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read().decode(), _lower(error.headers))


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def link_in(message: EmailMessage) -> str:
    """The confirmation link of a message (its text part)."""
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    found = re.search(r"http://127\.0\.0\.1:\d+/attest/\S+", text.get_content())
    assert found, text.get_content()
    return found.group()


def nonce_in(page: str) -> str:
    found = re.search(r'name="nonce" value="([^"]+)"', page)
    assert found, page
    return found.group(1)
