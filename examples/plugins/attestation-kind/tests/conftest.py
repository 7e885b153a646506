"""The campaign's e-mail goes to campaignkit's ck_smtp inbox; the web app is served on 127.0.0.1 by campaignkit's
ck_web fixture, at the address its links point to (web.base_url = ck_web_url)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest

from campaignkit.core.testing import SmtpInbox

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
def ck_settings(ck_smtp: SmtpInbox, ck_web_url: str) -> dict[str, Any]:
    return {
        "plugins": {"config": {"smtp": ck_smtp.channel_config()}},
        "web": {"base_url": ck_web_url},  # the links in the e-mails lead to the app ck_web serves
    }


@pytest.fixture
def served(ck_web: Any) -> str:
    """campaignkit's web app on ck_runtime, with every kind's routes, served on 127.0.0.1 for the test (ck_web)."""
    return str(ck_web.url)


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
