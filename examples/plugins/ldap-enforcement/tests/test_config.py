"""Registration and the plugins.config.ldap_group table: every mistake is refused at start, naming its key."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import pytest
from ck_ldap import LdapGroupAction

from campaignkit.core import ConfigurationError

PASSWORD = "the-bind-password-0123"
GOOD = {"url": "ldaps://ldap.example.org", "bind_dn": "uid=campaigns,ou=services,dc=example,dc=org",
        "bind_password": PASSWORD, "base_dn": "ou=people,dc=example,dc=org",
        "groups": {"Git": "cn=git-users,ou=groups,dc=example,dc=org"}}


def test_the_installed_distribution_registers_ldap_group(ck_make_runtime: Any) -> None:
    assert [ep.value for ep in entry_points(group="campaignkit", name="ldap_group")] == ["ck_ldap"]
    runtime = ck_make_runtime(plugins={"config": {"ldap_group": GOOD}})
    action = runtime.registry.enforcement_action("ldap_group", runtime)
    assert isinstance(action, LdapGroupAction)
    assert (action.config.user_filter, action.config.membership_attribute) == ("(uid={user})", "member")
    assert PASSWORD not in repr(action.config) and PASSWORD not in action.config.model_dump_json()


@pytest.mark.parametrize("change, key, problem", [
    ({"url": "http://ldap.example.org"}, "url", "ldap:// or ldaps://"),
    ({"url": "ldaps://admin:pw@ldap.example.org"}, "url", "credentials"),
    ({"url": "ldaps://ldap.example.org/dc=example,dc=org"}, "url", "end after host"),
    ({"url": "ldap://ldap.example.org"}, "use_starttls", "in clear"),
    ({"use_starttls": True}, "use_starttls", "ldaps:// url"),
    ({"bind_dn": "campaigns"}, "bind_dn", "not a valid DN"),
    ({"base_dn": ""}, "base_dn", "not a valid DN"),
    ({"groups": {"Git": "git-users"}}, "groups", "'Git': is not a valid DN"),
    ({"groups": {}}, "ldap_group", "give group_dn"),
    ({"user_filter": "(uid=ada)"}, "user_filter", "must contain {user}"),
    ({"user_filter": "uid={user}"}, "user_filter", "not a valid LDAP filter"),
    ({"membership_attribute": "memberUid"}, "membership_attribute", "'member' or 'uniqueMember'"),
    ({"timeout_seconds": 0}, "timeout_seconds", "greater than or equal to 1"),
    ({"ca_file": "/nonexistent/ca.pem"}, "ca_file", "no such file"),
    ({"password": PASSWORD}, "password", "Extra inputs are not permitted"),
])
def test_a_bad_setting_is_refused_at_start_naming_its_key(ck_make_runtime: Any, change: dict[str, Any], key: str,
                                                          problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ck_make_runtime(plugins={"config": {"ldap_group": {**GOOD, **change}}})
    message = str(caught.value)
    assert f"plugins.config.{key}" in message if key == "ldap_group" else f"plugins.config.ldap_group.{key}:" in message
    assert problem in message
    assert PASSWORD not in message


def test_plain_ldap_without_starttls_is_allowed_on_loopback_only(ck_make_runtime: Any) -> None:
    runtime = ck_make_runtime(plugins={"config": {"ldap_group": {**GOOD, "url": "ldap://127.0.0.1:3890"}}})
    assert runtime.registry.enforcement_action("ldap_group", runtime).config.port == 3890
