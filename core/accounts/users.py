"""Accounts: add, list, change role, disable and enable, set a new password; each change audited with who made it.

Passwords are argon2id hashes at pwdlib's recommended parameters. A password campaignkit makes (for a new account, or
a reset) is 128 random bits shown once to whoever ran the command; campaignkit keeps only its hash.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from ..audit import Actor, AuditSubType, AuditType, record
from ..db import reading, writing
from ..db.schema import users
from ..errors import CampaignkitError, InvalidState, NotFound
from .roles import Role

if TYPE_CHECKING:
    from ..runtime import Runtime

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,199}$")
MIN_PASSWORD_LENGTH = 12


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None
    has_password: bool
    sso: bool = False  # made by single sign-on (sso.py): found by the provider's subject, signs in only that way

    @property
    def active(self) -> bool:
        return self.disabled_at is None


def _hasher() -> Any:
    from pwdlib import PasswordHash  # argon2 loads only for the commands that hash

    return PasswordHash.recommended()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CampaignkitError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    return str(_hasher().hash(password))


class Accounts:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def add(self, name: str, role: Role, actor: Actor, password: str | None = None) -> str | None:
        """Add an account; returns the password campaignkit made for it, when none was given, to show once."""
        if not USER_NAME.match(name):
            raise CampaignkitError(f"user name {name[:60]!r}: letters, digits and _ . @ + - only, up to 200, "
                                   "starting with a letter or digit")
        made = secrets.token_urlsafe(16) if password is None else None
        hashed = hash_password(password if password is not None else str(made))
        now = self.runtime.clock.now()
        with writing(self.runtime.engine) as conn:
            if conn.execute(select(users.c.id).where(users.c.name == name)).first() is not None:
                raise InvalidState(f"user {name!r} already exists")
            conn.execute(insert(users).values(name=name, role=str(role), password_hash=hashed, created_at=now,
                                              updated_at=now))
            self._audit(conn, actor, AuditSubType.USER_CREATED, now, f"user {name!r} added with role {role}")
        return made

    def list(self) -> list[User]:
        with reading(self.runtime.engine) as conn:
            return [_user(row) for row in conn.execute(select(users).order_by(users.c.name))]

    def get(self, name: str) -> User:
        with reading(self.runtime.engine) as conn:
            return _user(self._row(conn, name))

    def any(self) -> bool:
        """Whether any account exists (``init`` makes the first admin only when none does)."""
        with reading(self.runtime.engine) as conn:
            return conn.execute(select(users.c.id).limit(1)).first() is not None

    def set_role(self, name: str, role: Role, actor: Actor) -> None:
        now = self.runtime.clock.now()
        with writing(self.runtime.engine) as conn:
            row = self._row(conn, name)
            if row.role == role:
                return
            self._refuse_last_admin(conn, row, f"give {name!r} the role {role}")
            conn.execute(update(users).where(users.c.id == row.id).values(role=str(role), updated_at=now))
            self._audit(conn, actor, AuditSubType.ROLE_CHANGED, now, f"user {name!r}: role {row.role} -> {role}")

    def disable(self, name: str, actor: Actor) -> None:
        now = self.runtime.clock.now()
        with writing(self.runtime.engine) as conn:
            row = self._row(conn, name)
            if row.disabled_at is not None:
                return
            self._refuse_last_admin(conn, row, f"disable {name!r}")
            conn.execute(update(users).where(users.c.id == row.id).values(disabled_at=now, updated_at=now))
            self._audit(conn, actor, AuditSubType.USER_DISABLED, now, f"user {name!r} disabled")

    def enable(self, name: str, actor: Actor) -> None:
        now = self.runtime.clock.now()
        with writing(self.runtime.engine) as conn:
            row = self._row(conn, name)
            if row.disabled_at is None:
                return
            conn.execute(update(users).where(users.c.id == row.id).values(disabled_at=None, updated_at=now))
            self._audit(conn, actor, AuditSubType.USER_ENABLED, now, f"user {name!r} enabled")

    def reset_password(self, name: str, actor: Actor, password: str | None = None) -> str | None:
        """Set a new password (made here when none is given, and returned to show once)."""
        made = secrets.token_urlsafe(16) if password is None else None
        hashed = hash_password(password if password is not None else str(made))
        now = self.runtime.clock.now()
        with writing(self.runtime.engine) as conn:
            row = self._row(conn, name)
            if row.sso_subject is not None:
                raise InvalidState(f"user {name!r} signs in through single sign-on and has no password")
            conn.execute(update(users).where(users.c.id == row.id).values(password_hash=hashed, updated_at=now))
            record(conn, actor=actor, audit_type=AuditType.SYSTEM_ACCESS, sub_type=AuditSubType.CHANGE_PASSWORD,
                   at=now, code=self, details=f"password of user {name!r} set anew")
        return made

    def check_password(self, name: str, password: str) -> User | None:
        """The account, if it is active and the password is its own; None otherwise, in about the same time."""
        with reading(self.runtime.engine) as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        hasher = _hasher()
        if row is None or row.password_hash is None:
            hasher.verify(password, _DUMMY_HASH.get(hasher))  # as slow as a real check: no probing for names
            return None
        if not hasher.verify(password, row.password_hash) or row.disabled_at is not None:
            return None
        return _user(row)

    @staticmethod
    def _row(conn: Connection, name: str) -> Any:
        row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            raise NotFound(f"no user {name!r}")
        return row

    @staticmethod
    def _refuse_last_admin(conn: Connection, row: Any, change: str) -> None:
        """Someone must be left who can manage accounts."""
        if row.role != Role.ADMIN or row.disabled_at is not None:
            return
        admins = conn.execute(select(users.c.id).where(users.c.role == str(Role.ADMIN),
                                                       users.c.disabled_at.is_(None))).all()
        if len(admins) <= 1:
            raise InvalidState(f"cannot {change}: it is the last active admin; make another admin first")

    def _audit(self, conn: Connection, actor: Actor, sub_type: AuditSubType, at: datetime, details: str) -> None:
        record(conn, actor=actor, audit_type=AuditType.SECURITY, sub_type=sub_type, at=at, code=self,
               details=details)


class _DummyHash:
    """One hash of a random password, made on first use, to spend the same time on unknown names."""

    value: str | None = None

    def get(self, hasher: Any) -> str:
        if self.value is None:
            self.value = str(hasher.hash(secrets.token_urlsafe(16)))
        return self.value


_DUMMY_HASH = _DummyHash()


def _user(row: Any) -> User:
    return User(int(row.id), row.name, Role(row.role), row.created_at, row.disabled_at, row.password_hash is not None,
                row.sso_subject is not None)
