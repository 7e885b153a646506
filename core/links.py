"""Signed, expiring links: a salt per purpose, so a token made for one action never works for another."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select

from .clock import utc
from .errors import CampaignkitError, PermanentStepError
from .schema import launches, runs

if TYPE_CHECKING:
    from .runtime import Runtime


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


DECISION = "access-review-decision"
DIGEST = "access-review-digest"
DEFAULT_LINK_DAYS = 30


def _signer(runtime: Runtime) -> LinkSigner:
    key = runtime.settings.secret_key
    if key is None:
        raise PermanentStepError("secret_key is not set: run `campaignkit init` before sending links")
    return LinkSigner(key.get_secret_value())


def _page(runtime: Runtime, path: str) -> str:
    return f"{runtime.settings.web.base_url.rstrip('/')}/{path}"


def digest_link(runtime: Runtime, launch_id: int, assignee: str, expires_at: datetime) -> str:
    """The page where an approver sees all their items of one cycle and approves or revokes them all at once."""
    token = _signer(runtime).sign(DIGEST, {"launch": launch_id, "assignee": assignee}, expires_at)
    return _page(runtime, f"review/all/{token}")


class RunLinks:
    """The ``links`` template variable: signed URLs for one run, valid until its cycle's deadline."""

    def __init__(self, runtime: Runtime, run_id: int, now: datetime, expires_at: datetime | None = None) -> None:
        self._runtime = runtime
        self._run_id = run_id
        self._now = now
        self._expires_at = expires_at  # known already when a digest lists many runs of one cycle

    def _expiry(self) -> datetime:
        if self._expires_at is not None:
            return self._expires_at
        with self._runtime.engine.connect() as conn:
            deadline = conn.execute(select(launches.c.deadline_at).join(runs, runs.c.launch_id == launches.c.id)
                                    .where(runs.c.id == self._run_id)).scalar()
        return deadline or self._now + timedelta(days=DEFAULT_LINK_DAYS)

    def decision(self) -> str:
        """The page where an approver sees the item and approves or revokes it."""
        token = _signer(self._runtime).sign(DECISION, {"run": self._run_id}, self._expiry())
        return _page(self._runtime, f"review/{token}")
