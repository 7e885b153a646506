"""Personal API tokens: issued to an account with a scope (read or write) and an optional expiry, shown once, kept as
a SHA-256 hash, revocable, with the time each was last used.

A token reads ``ck_<prefix>_<secret>``: the prefix (public, shown in lists) tells tokens apart; the secret is 256
random bits. Lookup is by the hash of the whole token, so no comparison leaks timing about a stored one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import insert, or_, select, update

from ..audit import Actor, AuditSubType, AuditType, record
from ..db import reading, writing
from ..db.schema import api_tokens, users
from ..errors import CampaignkitError, InvalidState, NotFound
from .roles import Principal, Role, Scope

if TYPE_CHECKING:
    from ..runtime import Runtime

PREFIX = "ck_"
LAST_USED_EVERY = timedelta(minutes=1)  # a busy script costs one write a minute, not one per request


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user_name: str
    name: str
    prefix: str
    scope: Scope
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Tokens:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def create(self, user_name: str, name: str, scope: Scope, actor: Actor,
               lifetime: timedelta | None = None) -> tuple[str, TokenInfo]:
        """Issue a token; returns it (to show once: campaignkit keeps only its hash) and what lists show of it."""
        if not name.strip() or len(name) > 100:
            raise CampaignkitError("token name: 1 to 100 characters")
        prefix = secrets.token_hex(4)
        token = f"{PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        now = self.runtime.clock.now()
        expires = now + lifetime if lifetime is not None else None
        with writing(self.runtime.engine) as conn:
            user = conn.execute(select(users).where(users.c.name == user_name)).first()
            if user is None:
                raise NotFound(f"no user {user_name!r}")
            if user.disabled_at is not None:
                raise InvalidState(f"user {user_name!r} is disabled")
            if scope is Scope.WRITE and user.role == Role.AUDITOR:
                raise InvalidState(f"user {user_name!r} is an auditor, who changes nothing: only a read token")
            token_id = conn.execute(insert(api_tokens).values(
                user_id=user.id, name=name, prefix=prefix, token_hash=token_hash(token), scope=str(scope),
                created_at=now, expires_at=expires).returning(api_tokens.c.id)).scalar_one()
            until = f"until {expires.isoformat(timespec='seconds')}" if expires else "without expiry"
            record(conn, actor=actor, audit_type=AuditType.SECURITY, sub_type=AuditSubType.TOKEN_CREATED, at=now,
                   code=self, details=f"token {token_id} ({name!r}, {PREFIX}{prefix}_...) for user {user_name!r}: "
                                      f"{scope}, {until}")
        return token, TokenInfo(int(token_id), user_name, name, prefix, scope, now, expires, None, None)

    def list(self, user_name: str | None = None) -> list[TokenInfo]:
        query = (select(api_tokens, users.c.name.label("user_name")).join(users, users.c.id == api_tokens.c.user_id)
                 .order_by(users.c.name, api_tokens.c.id))
        if user_name is not None:
            query = query.where(users.c.name == user_name)
        with reading(self.runtime.engine) as conn:
            return [TokenInfo(int(row.id), row.user_name, row.name, row.prefix, Scope(row.scope), row.created_at,
                              row.expires_at, row.last_used_at, row.revoked_at) for row in conn.execute(query)]

    def revoke(self, token_id: int, actor: Actor) -> None:
        now = self.runtime.clock.now()
        with writing(self.runtime.engine) as conn:
            row = conn.execute(select(api_tokens.c.revoked_at, api_tokens.c.name, users.c.name.label("user_name"))
                               .join(users, users.c.id == api_tokens.c.user_id)
                               .where(api_tokens.c.id == token_id)).first()
            if row is None:
                raise NotFound(f"no token {token_id}")
            if row.revoked_at is not None:
                return
            conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=now))
            record(conn, actor=actor, audit_type=AuditType.SECURITY, sub_type=AuditSubType.TOKEN_REVOKED, at=now,
                   code=self, details=f"token {token_id} ({row.name!r}) of user {row.user_name!r} revoked")

    def authenticate(self, token: str) -> Principal | None:
        """The account a bearer token acts as, if the token is live and its account active; None otherwise."""
        if not token.startswith(PREFIX):
            return None
        now = self.runtime.clock.now()
        query = (select(api_tokens.c.id, api_tokens.c.scope, api_tokens.c.last_used_at, users.c.name, users.c.role)
                 .join(users, users.c.id == api_tokens.c.user_id)
                 .where(api_tokens.c.token_hash == token_hash(token), api_tokens.c.revoked_at.is_(None),
                        users.c.disabled_at.is_(None),
                        or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > now)))
        with reading(self.runtime.engine) as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
            self._used(int(row.id), now)
        return Principal(row.name, Role(row.role), Scope(row.scope), int(row.id))

    def _used(self, token_id: int, now: datetime) -> None:
        with writing(self.runtime.engine) as conn:
            conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now))

