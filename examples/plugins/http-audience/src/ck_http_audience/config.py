"""The hris source's settings (``plugins.config.hris``) and the campaign's audience spec."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from campaignkit.core import AudienceError, CaFile, OutboundUrl

Scalar = str | int | float | bool


class HrisConfig(BaseModel):
    """Where the API is and how to ask it: one table per deployment, shared by every campaign."""

    # Inputs stay out of validation errors: a rejected token would otherwise be quoted in them.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    base_url: OutboundUrl = Field(description="API root, e.g. https://hr.example.org/api/v1; endpoints go below it.")
    token: SecretStr = Field(description="Sent as 'Authorization: Bearer <token>'; never logged or shown.")
    page_size: int = Field(default=200, ge=1, le=10_000, description="Records asked for per page.")
    page_size_param: str = Field(default="limit", min_length=1, description="Query parameter carrying page_size.")
    items_field: str = Field(default="items", min_length=1, description="Field of a page holding its records.")
    next_field: str = Field(default="next", min_length=1,
                            description="Field of a page holding the next page's link; null or absent on the last.")
    timeout_seconds: float = Field(default=30, gt=0, le=300, description="Per request: connect, send and answer.")
    retries: int = Field(default=2, ge=0, le=10, description="Extra attempts per page on no answer, 429 or 5xx.")
    ca_file: CaFile = Field(default=None, description="PEM bundle of a private CA that signed the server.")

    @field_validator("base_url")
    @classmethod
    def _plain_root(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; give the token in 'token'")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query string or fragment; audiences give filters")
        return value.rstrip("/")

    @field_validator("token")
    @classmethod
    def _header_safe(cls, value: SecretStr) -> SecretStr:
        # Checked here, with a message that does not quote it: the HTTP library's own error would.
        if not re.fullmatch(r"[\x21-\x7e]+", value.get_secret_value()):
            raise ValueError("must be printable ASCII without spaces")
        return value


class HrisSpec(BaseModel):
    """A campaign's ``audience`` table when its source is hris."""

    model_config = ConfigDict(extra="forbid")

    source: str
    endpoint: str = Field(description="Path below base_url, e.g. /employees.")
    key: str | list[str] = Field(default="key", description="Record field(s) identifying a target.")
    filters: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict, description="Sent as query parameters.")

    @field_validator("endpoint")
    @classmethod
    def _below_base(cls, value: str) -> str:
        # A path only: the token must never go to a host other than base_url's.
        parts = urlsplit(value)
        if parts.scheme or parts.netloc or value.startswith("//"):
            raise ValueError("must be a path below plugins.config.hris.base_url, not a URL")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query string; give query parameters in audience.filters")
        if ".." in value.split("/"):
            raise ValueError("must not contain '..'")
        return "/" + value.strip("/")

    @field_validator("key")
    @classmethod
    def _some_key(cls, value: str | list[str]) -> str | list[str]:
        if not value or (isinstance(value, list) and not all(value)):
            raise ValueError("must name at least one record field")
        return value

    @property
    def key_fields(self) -> list[str]:
        return [self.key] if isinstance(self.key, str) else list(self.key)


def parse_spec(spec: Mapping[str, Any], page_size_param: str) -> HrisSpec:
    """The audience spec, or an AudienceError naming each bad key as ``audience.<key>``."""
    try:
        parsed = HrisSpec.model_validate(dict(spec))
    except ValidationError as exc:
        problems = "; ".join(
            f"audience.{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise AudienceError(f"hris: {problems}") from None
    if page_size_param in parsed.filters:
        raise AudienceError(f"hris: audience.filters.{page_size_param}: set by plugins.config.hris.page_size")
    return parsed
