"""Signed, expiring links: HMAC-SHA256 with a salt per purpose, so a token made for one action never works for another.

Campaign kinds build their links (an access review's decision link, a simulation's tracking link) with ``signer``
and ``page_url``, and hand templates the finished strings (LinkText), never an object that can sign.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, URLSafeSerializer

from ..clock import utc
from ..errors import CampaignkitError, PermanentStepError

if TYPE_CHECKING:
    from ..runtime import Runtime


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


def page_url(runtime: Runtime, path: str) -> str:
    """``path`` under the public base URL (web.base_url)."""
    return f"{runtime.settings.web.base_url.rstrip('/')}/{path}"
