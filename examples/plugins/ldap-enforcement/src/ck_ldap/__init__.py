"""campaignkit-ldap: the ``ldap_group`` enforcement action, which removes a user from an LDAP group."""

from __future__ import annotations

from campaignkit.core import EnforcementAction, hookimpl

from .action import LdapGroupAction
from .config import LdapGroupConfig


@hookimpl
def register_enforcement_actions() -> list[type[EnforcementAction]]:
    return [LdapGroupAction]


__all__ = ["LdapGroupAction", "LdapGroupConfig", "register_enforcement_actions"]
