"""Accounts made and kept by single sign-on (OpenID Connect).

The web side (core/web/oidc.py, core/web/console/sso.py) proves who someone is: an ID token from the configured
provider, checked. Here that identity becomes a console session:

- The role comes from the claim oidc.roles_claim through oidc.role_map, at every sign-in; a change is written and
  audited (Security / Role Changed). A claim that maps to no role refuses the sign-in, unless oidc.default_role is set.
- The account is found by the provider's issuer and subject (sub). At the first sign-in it is made (Security / User
  Created) with the name oidc.name_claim gives, and no password; it keeps that name afterwards.
- A disabled account stays disabled whatever the provider says. A name already taken by another account (a password
  account, or another subject's) is refused rather than taken over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..audit import Actor, AuditSubType, AuditType, record
from ..db import writing
from ..db.schema import users
from .roles import Role
from .sessions import Session, Sessions
from .users import USER_NAME, User, _user

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..settings import OidcSettings

POWER = (Role.ADMIN, Role.OPERATOR, Role.AUDITOR)  # several matching claim values: the first of these wins
MAX_VALUES = 200  # claim values looked at; a provider sending more is trimmed, not trusted to be small


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in: its issuer, the subject (sub) and the ID token's claims, all checked."""

    issuer: str
    subject: str
    claims: Mapping[str, Any]


class SignOnRefused(Exception):
    """A proven identity that may not sign in: ``str(exc)`` for the person, ``reason`` for the audit record (Login
    Failed, coalesced by it), ``user`` the name it would sign in as, when known."""

    def __init__(self, message: str, reason: str, user: str = "anonymous") -> None:
        super().__init__(message)
        self.reason = reason
        self.user = user


def claim_values(claims: Mapping[str, Any], path: str) -> list[str]:
    """The texts a claim holds (a list, or one text): the claim named ``path``, else the dotted path into objects
    (``realm_access.roles``)."""
    value: Any = claims.get(path)
    if value is None and "." in path:
        value = claims
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value[:MAX_VALUES] if isinstance(item, str)]
    return []


def role_from_claims(claims: Mapping[str, Any], settings: OidcSettings) -> Role | None:
    """The most powerful role the claim's values map to, else the default role (None: no role, refuse)."""
    mapped = {Role(settings.role_map[value]) for value in claim_values(claims, settings.roles_claim)
              if value in settings.role_map}
    for role in POWER:
        if role in mapped:
            return role
    return Role(settings.default_role) if settings.default_role is not None else None


class SingleSignOn:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.oidc

    def sign_in(self, identity: Identity, client_ip: str | None) -> tuple[str, Session]:
        """A console session for the identity's account (made or brought up to date first), or SignOnRefused."""
        label = self.settings.button_label
        names = claim_values(identity.claims, self.settings.name_claim)
        name = names[0].strip() if names else ""
        who = name[:100] if name else f"subject {identity.subject[:100]!r}"
        role = role_from_claims(identity.claims, self.settings)
        if role is None:
            raise SignOnRefused(
                f"You signed in with {label} as {who}, but none of your {self.settings.roles_claim} gives a role in "
                "campaignkit. Ask an admin to add you to a group that does.",
                f"no role: claim {self.settings.roles_claim!r} maps to none", name[:100] or "anonymous")
        try:
            user = self._account(identity, name, role, client_ip)
        except IntegrityError:  # another sign-in of the same person made the account a moment ago
            raise SignOnRefused("Your account was being set up by another sign-in at the same moment: try again.",
                                "account made concurrently", name[:100] or "anonymous") from None
        sessions = Sessions(self.runtime)
        return sessions.open(user, client_ip, f"signed in to the console through single sign-on as {user.role}")

    def _account(self, identity: Identity, name: str, role: Role, client_ip: str | None) -> User:
        now = self.runtime.clock.now()
        with writing(self.runtime.engine) as conn:
            row = conn.execute(select(users).where(users.c.sso_issuer == identity.issuer,
                                                   users.c.sso_subject == identity.subject)).first()
            if row is None:
                return self._add(conn, identity, name, role, client_ip)
            actor = Actor(row.name, None, client_ip)
            if row.disabled_at is not None:
                raise SignOnRefused("Your campaignkit account is disabled. Ask an admin to enable it.",
                                    "the account is disabled", row.name)
            if row.role != role:
                conn.execute(update(users).where(users.c.id == row.id).values(role=str(role), updated_at=now))
                record(conn, actor=actor, audit_type=AuditType.SECURITY, sub_type=AuditSubType.ROLE_CHANGED, at=now,
                       code=self, details=f"user {row.name!r}: role {row.role} -> {role}, from the single sign-on "
                       f"claim {self.settings.roles_claim!r}")
                row = conn.execute(select(users).where(users.c.id == row.id)).one()
            return _user(row)

    def _add(self, conn: Connection, identity: Identity, name: str, role: Role, client_ip: str | None) -> User:
        if not USER_NAME.match(name):
            shown = f"{name[:60]!r}" if name else "nothing"
            raise SignOnRefused(
                f"Your {self.settings.name_claim} ({shown}) cannot name a campaignkit account (letters, digits and "
                "_ . @ + - only). Ask an admin to check the single sign-on settings.",
                f"claim {self.settings.name_claim!r} is missing or not a valid account name")
        taken = conn.execute(select(users.c.sso_subject).where(users.c.name == name)).first()
        if taken is not None:
            raise SignOnRefused(
                f"An account named {name} already exists in campaignkit and does not sign in through "
                f"{self.settings.button_label}. Ask an admin.",
                "the name belongs to another account", name)
        now = self.runtime.clock.now()
        conn.execute(insert(users).values(name=name, role=str(role), password_hash=None, created_at=now,
                                          updated_at=now, sso_issuer=identity.issuer, sso_subject=identity.subject))
        record(conn, actor=Actor(name, None, client_ip), audit_type=AuditType.SECURITY,
               sub_type=AuditSubType.USER_CREATED, at=now, code=self,
               details=f"user {name!r} added with role {role} at their first single sign-on "
               f"(issuer {identity.issuer}, subject {identity.subject[:100]!r})")
        return _user(conn.execute(select(users).where(users.c.name == name)).one())
