"""scim: removes a user from the SCIM 2.0 group that grants an application, or deactivates the user."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from campaignkit.core import (
    CaFile,
    EnforcementAction,
    EnforcementRequest,
    EnforcementResult,
    OutboundUrl,
    PermanentStepError,
)

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

# An attribute path as RFC 7644 §3.10 spells it (optionally URN-qualified): checked here so that it cannot
# break out of the filter it is put in.
ATTRIBUTE_PATH = re.compile(r"^(urn:[A-Za-z0-9.:_-]+:)?[A-Za-z][A-Za-z0-9_$-]*(\.[A-Za-z][A-Za-z0-9_$-]*)?$")


class ScimConfig(BaseModel):
    # Inputs stay out of validation errors: a rejected token would otherwise be quoted in them.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: OutboundUrl = Field(description="SCIM base URL, e.g. https://idp.example.org/scim/v2.")
    token: SecretStr | None = Field(default=None, description="Bearer token sent as the Authorization header.")
    ca_file: CaFile = Field(default=None, description="PEM bundle of a private CA that signed the server.")
    timeout_seconds: float = Field(default=10, gt=0, le=300, description="Per request: connect, send and answer.")
    mode: Literal["remove_from_group", "deactivate"] = Field(
        default="remove_from_group",
        description="remove_from_group: drop the membership that grants the application; deactivate: active=false.",
    )
    groups: dict[str, str] = Field(
        default_factory=dict, description="Application name -> displayName (or id) of the SCIM group granting it."
    )
    user_attribute: str = Field(default="userName", description="SCIM attribute the user is found by.")
    user_param: str = Field(default="user", description="Request param (or target attribute) holding its value.")

    @field_validator("user_attribute")
    @classmethod
    def _attribute_path(cls, value: str) -> str:
        if not ATTRIBUTE_PATH.match(value):
            raise ValueError("must be a SCIM attribute path such as userName or emails.value")
        return value

    @field_validator("token")
    @classmethod
    def _header_safe(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here, with a message that does not quote it: the HTTP library's own error would.
        if value is not None and not re.fullmatch(r"[\x21-\x7e]+", value.get_secret_value()):
            raise ValueError("must be printable ASCII without spaces")
        return value


class ScimAction(EnforcementAction):
    """Safe to repeat: each call reads the current state first and reports an absent membership as done."""

    name = "scim"
    Config = ScimConfig
    config: ScimConfig

    def __init__(self, config: ScimConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        from .scim_client import ScimDirectory  # the SCIM libraries load only when a scim action is used

        self._directory = ScimDirectory(config)

    def close(self) -> None:
        self._directory.close()

    def enforce(self, request: EnforcementRequest) -> EnforcementResult:
        value = request.params.get(self.config.user_param) or request.target.get(self.config.user_param)
        if not value:
            raise PermanentStepError(f"scim: no {self.config.user_param!r} in the request params or the target")
        user = self._directory.find_user(str(value))
        if self.config.mode == "deactivate":
            return self._directory.deactivate(user)
        application = request.params.get("application") or request.target.get("application")
        group_ref = self.config.groups.get(str(application))
        if group_ref is None:
            raise PermanentStepError(f"scim: application {application!r} has no group in "
                                     f"plugins.config.{self.settings_key()}.groups")
        return self._directory.remove_membership(user, group_ref)


__all__ = ["ScimAction", "ScimConfig"]
