"""A recipient's links: one random token per run (128 bits, never derived from the run id) opens every page of the
simulation for that recipient — the tracking pixel, the link, the landing page, the attachment, the report button
and the training — and makes the VERP address its delivery notifications come back to."""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

from campaignkit.core.web.links import LinkText, page_url

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

TOKEN = re.compile(r"^[0-9a-f]{32}$")


def new_token() -> str:
    return secrets.token_hex(16)


def is_token(value: str) -> bool:
    return bool(TOKEN.match(value))


def recipient_links(runtime: Runtime, token: str, attachment_name: str) -> dict[str, LinkText]:
    """The ``links`` template variable: plain strings."""
    base = f"p/{token}"
    return {
        "click": LinkText(page_url(runtime, base)),
        "pixel": LinkText(page_url(runtime, f"{base}/o.gif")),
        "attachment": LinkText(page_url(runtime, f"{base}/a/{attachment_name}")),
        "report": LinkText(page_url(runtime, f"{base}/report")),
        "training": LinkText(page_url(runtime, f"{base}/training")),
    }


def verp_address(return_path: str, token: str) -> str:
    """bounces@example.org -> bounces+<token>@example.org: each notification names the email it is about."""
    local, _, domain = return_path.partition("@")
    return f"{local}+{token}@{domain}"
