"""ldap_group: removes a user from the LDAP group that grants an application, and checks that it is gone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ldap3 import BASE, LEVEL, MODIFY_DELETE, NO_ATTRIBUTES, SUBTREE, Connection
from ldap3.utils.conv import escape_filter_chars

from campaignkit.core import EnforcementAction, EnforcementRequest, EnforcementResult, PermanentStepError

from .config import NAME, LdapGroupConfig
from .connection import close, open_connection, result_error, translated

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

SUCCESS, SIZE_LIMIT_EXCEEDED, NO_SUCH_ATTRIBUTE, NO_SUCH_OBJECT = 0, 4, 16, 32
OBJECT_CLASS_VIOLATION, INSUFFICIENT_ACCESS = 65, 50


class LdapGroupAction(EnforcementAction):
    """Safe to repeat: a membership that is already gone is reported as removed, with already=True.

    One connection per call: calls run on the worker's thread pool, and a directory that restarted between
    two calls costs nothing.
    """

    name = NAME
    Config = LdapGroupConfig
    config: LdapGroupConfig

    def __init__(self, config: LdapGroupConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        self._where = config.where

    def enforce(self, request: EnforcementRequest) -> EnforcementResult:
        param = self.config.user_param
        value = request.params.get(param) or request.target.get(param)
        if not value:
            raise PermanentStepError(f"{NAME}: no {param!r} in the request params or the target")
        group_dn, group_key = self._group(request)
        conn = open_connection(self.config)
        try:
            user_dn = self._find_user(conn, str(value))
            return self._remove(conn, user_dn, group_dn, group_key)
        finally:
            close(conn)

    def _group(self, request: EnforcementRequest) -> tuple[str, str]:
        """The group DN and the settings key it came from (for messages)."""
        application = request.params.get("application") or request.target.get("application")
        if application is not None and str(application) in self.config.groups:
            return self.config.groups[str(application)], f"plugins.config.{NAME}.groups[{str(application)!r}]"
        if self.config.group_dn is not None:
            return self.config.group_dn, f"plugins.config.{NAME}.group_dn"
        raise PermanentStepError(f"{NAME}: application {application!r} has no group in plugins.config.{NAME}.groups "
                                 "and there is no group_dn")

    def _find_user(self, conn: Connection, value: str) -> str:
        # The value is escaped (RFC 4515): whatever it holds, it is compared as one literal value.
        search_filter = self.config.user_filter_for(escape_filter_chars(value))
        base, scope = self.config.base_dn, SUBTREE if self.config.search_scope == "subtree" else LEVEL
        with translated(f"finding user {value!r}", self._where, conn):
            conn.search(base, search_filter, scope, attributes=NO_ATTRIBUTES, size_limit=2)
        code = conn.result.get("result")
        if code == NO_SUCH_OBJECT:
            raise PermanentStepError(f"{NAME}: base_dn {base!r} does not exist at {self._where} "
                                     f"(plugins.config.{NAME}.base_dn)")
        if code not in (SUCCESS, SIZE_LIMIT_EXCEEDED):
            raise result_error(f"finding user {value!r} with {search_filter}", conn.result, self._where)
        found = [entry["dn"] for entry in conn.response or [] if entry.get("type") == "searchResEntry"]
        if not found:
            raise PermanentStepError(f"{NAME}: no user matches {search_filter} under {base} at {self._where}")
        if len(found) > 1:
            raise PermanentStepError(f"{NAME}: more than one entry matches {search_filter} under {base}: "
                                     f"make plugins.config.{NAME}.user_filter select one user")
        return str(found[0])

    def _remove(self, conn: Connection, user_dn: str, group_dn: str, group_key: str) -> EnforcementResult:
        attribute = self.config.membership_attribute
        detail: dict[str, Any] = {"user_dn": user_dn, "group_dn": group_dn, "attribute": attribute}
        doing = f"removing {user_dn} from {group_dn}"
        with translated(doing, self._where, conn):
            conn.modify(group_dn, {attribute: [(MODIFY_DELETE, [user_dn])]})
        code = conn.result.get("result")
        if code == NO_SUCH_ATTRIBUTE:  # not (or no longer) a member: the outcome the caller wants
            self._check_group_uses(conn, group_dn, group_key)
            return EnforcementResult(removed=True, detail={**detail, "already": True})
        if code != SUCCESS:
            raise result_error(doing, conn.result, self._where, _hint(code, attribute, group_key))
        # Verified rather than trusted, with the server's own matching rules for DNs.
        still = self._is_member(conn, user_dn, group_dn, group_key)
        return EnforcementResult(removed=not still, detail={**detail, "already": False})

    def _is_member(self, conn: Connection, user_dn: str, group_dn: str, group_key: str) -> bool:
        return self._matches(conn, group_dn, f"({self.config.membership_attribute}={escape_filter_chars(user_dn)})",
                             f"reading {group_dn} back", group_key)

    def _check_group_uses(self, conn: Connection, group_dn: str, group_key: str) -> None:
        """A group without a single value of the attribute is a misconfiguration, not a done removal."""
        attribute = self.config.membership_attribute
        if not self._matches(conn, group_dn, f"({attribute}=*)", f"reading {group_dn}", group_key):
            other = "uniqueMember" if attribute == "member" else "member"
            raise PermanentStepError(f"{NAME}: group {group_dn} has no {attribute} values at all: does it keep its "
                                     f"members in {other}? (plugins.config.{NAME}.membership_attribute)")

    def _matches(self, conn: Connection, group_dn: str, search_filter: str, doing: str, group_key: str) -> bool:
        with translated(doing, self._where, conn):
            conn.search(group_dn, search_filter, BASE, attributes=NO_ATTRIBUTES)
        code = conn.result.get("result")
        if code != SUCCESS:
            raise result_error(doing, conn.result, self._where, _hint(code, self.config.membership_attribute,
                                                                      group_key))
        return any(entry.get("type") == "searchResEntry" for entry in conn.response or [])


def _hint(code: Any, attribute: str, group_key: str) -> str:
    if code == NO_SUCH_OBJECT:
        return f"no such group: check {group_key}"
    if code == OBJECT_CLASS_VIOLATION:
        return f"the group's object class requires at least one {attribute}, and this is the last one"
    if code == INSUFFICIENT_ACCESS:
        return f"bind_dn may not modify {attribute} of this group"
    return ""


__all__ = ["LdapGroupAction"]
