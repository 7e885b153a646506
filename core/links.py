"""Signed, expiring links: HMAC-SHA256 with a salt per purpose, so a token made for one action never works for another.

A decision link names the run, its recipient and the assignment it was sent for; the review service refuses it once
the item is handed to someone else. Templates receive the finished link strings, never an object that can sign.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, URLSafeSerializer

from .clock import utc
from .errors import CampaignkitError, PermanentStepError

if TYPE_CHECKING:
    from .runtime import Runtime


class LinkError(CampaignkitError):
    """A link that is forged, tampered with, made for another purpose, expired, or no longer its recipient's."""

    def __init__(self, message: str, *, expired: bool = False, gone: bool = False) -> None:
        super().__init__(message)
        self.expired = expired
        self.gone = gone or expired  # 410: it was valid once (expired, closed, handed on)


class LinkSigner:
    """Signs with ``secret_key``; also accepts links signed with ``previous`` keys, so a key rotates without
    breaking the links already in people's mailboxes (until they expire)."""

    def __init__(self, secret_key: str, previous: Sequence[str] = ()) -> None:
        if any(len(key) < 32 for key in (secret_key, *previous)):
            raise CampaignkitError("secret_key must be at least 32 characters; run `campaignkit init`")
        self._keys = [*previous, secret_key]  # itsdangerous signs with the last and verifies with any

    def _serializer(self, purpose: str) -> URLSafeSerializer:
        return URLSafeSerializer(self._keys, salt=f"campaignkit.link.{purpose}",
                                 signer_kwargs={"digest_method": hashlib.sha256})

    def sign(self, purpose: str, payload: Mapping[str, Any], expires_at: datetime) -> str:
        return str(self._serializer(purpose).dumps({**payload, "exp": int(utc(expires_at).timestamp())}))

    def verify(self, purpose: str, token: str, now: datetime) -> dict[str, Any]:
        try:
            data = self._serializer(purpose).loads(token)
        except BadSignature:
            raise LinkError("this link is not valid") from None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int):
            raise LinkError("this link is not valid")
        if utc(now).timestamp() >= data["exp"]:
            raise LinkError("this link has expired", expired=True)
        return {k: v for k, v in data.items() if k != "exp"}


DECISION = "access-review-decision"
DIGEST = "access-review-digest"
PAGE = "decision-page"  # the nonce a rendered decision page carries into its POST
DEFAULT_LINK_DAYS = 30


class LinkText(str):
    """A finished link. Calling it returns it, so templates written as ``{{ links.decision() }}`` keep working."""

    __slots__ = ()

    def __call__(self) -> str:
        return str(self)


def signer(runtime: Runtime) -> LinkSigner:
    settings = runtime.settings
    if settings.secret_key is None:
        raise PermanentStepError("secret_key is not set: run `campaignkit init` before sending links")
    return LinkSigner(settings.secret_key.get_secret_value(),
                      [key.get_secret_value() for key in settings.previous_secret_keys])


def link_expiry(deadline: datetime | None, now: datetime) -> datetime:
    """A link lives until its cycle's deadline, or DEFAULT_LINK_DAYS when the cycle has none."""
    return deadline or now + timedelta(days=DEFAULT_LINK_DAYS)


def _page(runtime: Runtime, path: str) -> str:
    return f"{runtime.settings.web.base_url.rstrip('/')}/{path}"


def recipient_tag(address: str) -> str:
    """Names a link's recipient inside its token without putting their address in a URL (tokens are signed, not
    encrypted, and URLs end up in logs)."""
    return hashlib.sha256(f"campaignkit.recipient:{address}".encode()).hexdigest()[:24]


def decision_link(runtime: Runtime, run_id: int, recipient: str, assignment: int, expires_at: datetime) -> LinkText:
    """The page where ``recipient`` sees the item and approves or revokes it, while the assignment holds."""
    token = signer(runtime).sign(DECISION, {"run": run_id, "to": recipient_tag(recipient), "a": assignment},
                                 expires_at)
    return LinkText(_page(runtime, f"review/{token}"))


def digest_link(runtime: Runtime, digest_id: int, recipient: str, expires_at: datetime) -> LinkText:
    """The page where ``recipient`` sees the items one digest listed and approves or revokes them all at once."""
    token = signer(runtime).sign(DIGEST, {"digest": digest_id, "to": recipient_tag(recipient)}, expires_at)
    return LinkText(_page(runtime, f"review/all/{token}"))


def run_links(runtime: Runtime, run_id: int, facets: Mapping[str, Any], deadline: datetime | None,
              now: datetime) -> dict[str, LinkText]:
    """The ``links`` template variable: plain strings. A decision link exists only for a run with an assignee,
    since it is bound to that recipient and the assignment they hold."""
    assignee = facets.get("assignee")
    if not assignee:
        return {}
    return {"decision": decision_link(runtime, run_id, str(assignee), int(facets.get("assignment") or 0),
                                      link_expiry(deadline, now))}
