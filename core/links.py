"""Signed, expiring links: a salt per purpose, so a token made for one action never works for another."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from .clock import utc
from .errors import CampaignkitError


class LinkError(CampaignkitError):
    """A link that is forged, tampered with, made for another purpose, or expired."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class LinkSigner:
    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < 32:
            raise CampaignkitError("secret_key must be at least 32 characters; run `campaignkit init`")
        self._secret = secret_key

    def _serializer(self, purpose: str) -> URLSafeSerializer:
        return URLSafeSerializer(self._secret, salt=f"campaignkit.link.{purpose}")

    def sign(self, purpose: str, payload: Mapping[str, Any], expires_at: datetime) -> str:
        return str(self._serializer(purpose).dumps({**payload, "exp": int(utc(expires_at).timestamp())}))

    def verify(self, purpose: str, token: str, now: datetime) -> dict[str, Any]:
        try:
            data = self._serializer(purpose).loads(token)
        except BadSignature:
            raise LinkError("this link is not valid") from None
        if not isinstance(data, dict) or "exp" not in data:
            raise LinkError("this link is not valid")
        if utc(now).timestamp() >= data["exp"]:
            raise LinkError("this link has expired", expired=True)
        return {k: v for k, v in data.items() if k != "exp"}
