"""Console sign-in and sessions.

A session lives in the database (so that signing out, or disabling the account, ends it everywhere), and ends after
web.session_idle_minutes without a request or web.session_hours after sign-in. The browser's cookie holds 256
random bits; the table keeps their SHA-256. Each session has its own CSRF token, which every state-changing form
carries.

Failed sign-ins lock the account for web.sign_in_lockout_minutes after web.sign_in_lockout_failures in a row (the
right password is refused too while it is locked); the web app also limits each client address (Rejections).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from ..audit import Actor, AuditSubType, AuditType, record
from ..db import reading, writing
from ..db.schema import sessions, users
from .roles import Role
from .tokens import token_hash
from .users import Accounts, User

if TYPE_CHECKING:
    from ..runtime import Runtime

SEEN_EVERY = timedelta(minutes=1)  # last_seen_at moves at most once a minute: one write a minute, not per request


@dataclass(frozen=True)
class Session:
    token_hash: str
    user_name: str
    role: Role
    csrf: str
    expires_at: datetime

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class SignInRefused(Exception):
    """Wrong name or password, a disabled or locked account: one message for all (no probing), the reason apart."""

    def __init__(self, reason: str) -> None:
        super().__init__("Wrong name or password, or the account is locked for a while.")
        self.reason = reason  # for the audit record: never the password


class Sessions:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.web = runtime.settings.web

    def sign_in(self, name: str, password: str, client_ip: str | None) -> tuple[str, Session]:
        """A new session for the account, or SignInRefused; returns the cookie's token and the session."""
        now = self.runtime.clock.now()
        with reading(self.runtime.engine) as conn:
            row = conn.execute(select(users.c.locked_until).where(users.c.name == name)).first()
        if row is not None and row.locked_until is not None and row.locked_until > now:
            raise SignInRefused(f"sign-in refused for {name[:100]!r}: the account is locked")
        user = Accounts(self.runtime).check_password(name, password)
        if user is None:
            self._failed(name, now)
            raise SignInRefused(f"sign-in refused for {name[:100]!r}: wrong name or password, or disabled")
        return self.open(user, client_ip, f"signed in to the console as {user.role}")

    def open(self, user: User, client_ip: str | None, details: str) -> tuple[str, Session]:
        """A new session for an account whose sign-in was checked (a password here, single sign-on in sso.py),
        audited as Login with ``details``; returns the cookie's token and the session."""
        now = self.runtime.clock.now()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session = Session(token_hash(token), user.name, user.role, csrf, now + timedelta(hours=self.web.session_hours))
        with writing(self.runtime.engine) as conn:
            conn.execute(update(users).where(users.c.id == user.id).values(failed_sign_ins=0, locked_until=None))
            conn.execute(insert(sessions).values(id=session.token_hash, user_id=user.id, csrf=csrf,
                                                 client_ip=client_ip, created_at=now, last_seen_at=now,
                                                 expires_at=session.expires_at))
            record(conn, actor=Actor(user.name, None, client_ip), audit_type=AuditType.SYSTEM_ACCESS,
                   sub_type=AuditSubType.LOGIN, at=now, code=self, details=details)
        return token, session

    def resume(self, token: str | None) -> Session | None:
        """The live session a cookie names, or None (unknown, ended, idle too long, past its limit, or its account
        disabled since)."""
        if not token:
            return None
        now = self.runtime.clock.now()
        query = (select(sessions.c.id, sessions.c.csrf, sessions.c.last_seen_at, sessions.c.expires_at,
                        users.c.name, users.c.role)
                 .join(users, users.c.id == sessions.c.user_id)
                 .where(sessions.c.id == token_hash(token), sessions.c.ended_at.is_(None),
                        sessions.c.expires_at > now, users.c.disabled_at.is_(None),
                        sessions.c.last_seen_at > now - timedelta(minutes=self.web.session_idle_minutes)))
        with reading(self.runtime.engine) as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        if now - row.last_seen_at >= SEEN_EVERY:
            with writing(self.runtime.engine) as conn:
                conn.execute(update(sessions).where(sessions.c.id == row.id).values(last_seen_at=now))
        return Session(row.id, row.name, Role(row.role), row.csrf, row.expires_at)

    def sign_out(self, session: Session, client_ip: str | None) -> None:
        now = self.runtime.clock.now()
        with writing(self.runtime.engine) as conn:
            ended = conn.execute(update(sessions).where(sessions.c.id == session.token_hash,
                                                        sessions.c.ended_at.is_(None)).values(ended_at=now))
            if ended.rowcount:
                record(conn, actor=Actor(session.user_name, None, client_ip), audit_type=AuditType.SYSTEM_ACCESS,
                       sub_type=AuditSubType.LOG_OUT, at=now, code=self, details="signed out of the console")

    def _failed(self, name: str, now: datetime) -> None:
        """Count a failure against an existing account, and lock it at the limit."""
        with writing(self.runtime.engine) as conn:
            row: Any = conn.execute(select(users.c.id, users.c.failed_sign_ins).where(users.c.name == name)).first()
            if row is None:
                return
            failures = int(row.failed_sign_ins) + 1
            locked = failures >= self.web.sign_in_lockout_failures
            conn.execute(update(users).where(users.c.id == row.id).values(
                failed_sign_ins=0 if locked else failures,
                locked_until=now + timedelta(minutes=self.web.sign_in_lockout_minutes) if locked else None))
