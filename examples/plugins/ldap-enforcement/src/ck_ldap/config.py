"""The ``plugins.config.ldap_group`` table: where the directory is, how to bind, how users and groups are found."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from ldap3.core.exceptions import LDAPInvalidDnError, LDAPInvalidFilterError
from ldap3.operation.search import parse_filter
from ldap3.utils.dn import parse_dn
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from campaignkit.core import CaFile, is_loopback

NAME = "ldap_group"  # the action's name and its table under plugins.config
USER_PLACEHOLDER = "{user}"
DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}


def check_dn(value: str) -> str:
    try:
        parse_dn(value)
    except LDAPInvalidDnError as exc:
        raise ValueError(f"is not a valid DN ({exc})") from None
    return value


class LdapGroupConfig(BaseModel):
    # Inputs stay out of validation errors: a mistyped password would otherwise be quoted in them.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: str = Field(description="ldap://host[:port] or ldaps://host[:port]; nothing after the port.")
    bind_dn: str = Field(description="DN of the service account that may modify the groups.")
    bind_password: SecretStr = Field(description="Password of bind_dn (simple bind).")
    base_dn: str = Field(description="Where users are searched, e.g. ou=people,dc=example,dc=org.")
    user_filter: str = Field(
        default="(uid={user})",
        description="LDAP filter that finds exactly one user; {user} is replaced by the escaped value of user_param.",
    )
    user_param: str = Field(default="user", description="Request param (or target attribute) holding that value.")
    search_scope: Literal["subtree", "one"] = Field(default="subtree", description="Below base_dn, or directly in it.")
    group_dn: str | None = Field(default=None, description="The group to remove users from when groups has no entry "
                                                           "for the application.")
    groups: dict[str, str] = Field(default_factory=dict, description="Application name -> DN of the group granting it.")
    membership_attribute: Literal["member", "uniqueMember"] = Field(
        default="member", description="member for groupOfNames, uniqueMember for groupOfUniqueNames.")
    use_starttls: bool = Field(default=False, validate_default=True,
                               description="Upgrade an ldap:// connection with StartTLS before binding.")
    ca_file: CaFile = Field(default=None, description="PEM bundle of a private CA that signed the server.")
    connect_timeout_seconds: float = Field(default=5, gt=0, le=120, description="To open the TCP connection.")
    timeout_seconds: int = Field(default=10, ge=1, le=300, description="To wait for each answer of the server.")

    @field_validator("url")
    @classmethod
    def _ldap_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError("must be an ldap:// or ldaps:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials: give bind_dn and bind_password")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must end after host[:port]: give base_dn and the group DNs as their own keys")
        try:
            parts.port  # noqa: B018  # a port that is not a number raises here
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value

    @field_validator("bind_dn", "base_dn", "group_dn")
    @classmethod
    def _dn(cls, value: str | None) -> str | None:
        return None if value is None else check_dn(value)

    @field_validator("groups")
    @classmethod
    def _group_dns(cls, value: dict[str, str]) -> dict[str, str]:
        for application, dn in value.items():
            try:
                check_dn(dn)
            except ValueError as exc:
                raise ValueError(f"{application!r}: {exc}") from None
        return value

    @field_validator("user_filter")
    @classmethod
    def _filter_template(cls, value: str) -> str:
        if USER_PLACEHOLDER not in value:
            raise ValueError(f"must contain {USER_PLACEHOLDER}, e.g. (uid={USER_PLACEHOLDER})")
        try:
            parse_filter(value.replace(USER_PLACEHOLDER, "x"), None, False, False, None, False)
        except LDAPInvalidFilterError as exc:
            raise ValueError(f"is not a valid LDAP filter ({exc}), e.g. (&(objectClass=person)(uid={{user}}))") \
                from None
        return value

    @field_validator("use_starttls")
    @classmethod
    def _encrypted(cls, value: bool, info: ValidationInfo) -> bool:
        url = info.data.get("url")
        if url is None:  # the url itself was refused; its error says why
            return value
        parts = urlsplit(url)
        if value and parts.scheme == "ldaps":
            raise ValueError("must be false with an ldaps:// url, which is TLS from the start")
        if not value and parts.scheme == "ldap" and not is_loopback(parts.hostname or ""):
            # The simple bind sends the password as it is: only loopback may see it unencrypted.
            raise ValueError("must be true for an ldap:// url to a host that is not loopback (else the bind "
                             "password crosses the network in clear); or use an ldaps:// url")
        return value

    @model_validator(mode="after")
    def _some_group(self) -> LdapGroupConfig:
        if self.group_dn is None and not self.groups:
            raise ValueError("give group_dn (one group for every application) or groups (application -> group DN)")
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or DEFAULT_PORTS[parts.scheme]

    @property
    def ldaps(self) -> bool:
        return urlsplit(self.url).scheme == "ldaps"

    @property
    def where(self) -> str:
        """The server as messages name it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{urlsplit(self.url).scheme}://{host}:{self.port}"

    def user_filter_for(self, escaped_value: str) -> str:
        return self.user_filter.replace(USER_PLACEHOLDER, escaped_value)


__all__ = ["NAME", "LdapGroupConfig", "check_dn"]
