"""Roles and what they allow. Three roles, as identity-governance consoles have them: an admin does everything, an
operator runs campaigns, an auditor reads everything and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..errors import CampaignkitError


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    AUDITOR = "auditor"


class Access(StrEnum):
    READ = "read"  # campaigns, runs, history, the audit trail, exports
    OPERATE = "operate"  # create, update, launch, pause, resume, terminate, retry, send events
    ADMINISTER = "administer"  # accounts and roles, plugin settings


GRANTS: dict[Role, frozenset[Access]] = {
    Role.ADMIN: frozenset(Access),
    Role.OPERATOR: frozenset({Access.READ, Access.OPERATE}),
    Role.AUDITOR: frozenset({Access.READ}),
}


class Scope(StrEnum):
    """What a token may be used for, within its owner's role."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an account (through one of its tokens) and the token's scope."""

    user_name: str
    role: Role
    scope: Scope
    token_id: int | None = None  # None: the deprecated shared api_token

    def allows(self, access: Access) -> bool:
        return access in GRANTS[self.role] and (access is Access.READ or self.scope is Scope.WRITE)


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise CampaignkitError(f"role {value!r}: one of {', '.join(Role)}") from None
