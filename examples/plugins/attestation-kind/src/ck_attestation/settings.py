"""The settings of an attestation (a campaign's ``settings:``): the policy, where the request goes, and reminders.

campaignkit validates them with this model when the campaign is created (``campaign create``) and reports every
problem at its file:line:column under its key, e.g. ``settings.policy.url: Value error, must start with https://``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_ .\-]{0,63}")
FOLDER = re.compile(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*")
MIN_REMINDER = timedelta(hours=1)
MAX_REMINDER = timedelta(days=365)


class Policy(BaseModel):
    """What people are asked to confirm: a title, and the policy itself as a link, a text, or both."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200, description="e.g. Acceptable use policy 2030.")
    url: str | None = Field(default=None, max_length=2000, description="Where the policy is published (https://).")
    text: str | None = Field(
        default=None, min_length=1, max_length=20_000, description="The policy itself, shown on the confirmation page."
    )

    @field_validator("title")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.strip() or any(ch in value for ch in "\r\n"):
            raise ValueError("must be one line of text")
        return value.strip()

    @field_validator("url")
    @classmethod
    def _web_link(cls, value: str | None) -> str | None:
        # Shown as a link on our page and in e-mails: only a plain https link, never javascript: or a local file.
        if value is not None and not re.fullmatch(r"https://[^\s\"'<>]+", value):
            raise ValueError("must start with https:// and contain no spaces or quotes")
        return value

    @model_validator(mode="after")
    def _something_to_read(self) -> Policy:
        if self.url is None and self.text is None:
            raise ValueError("give the policy's url, its text, or both")
        return self


class AttestationSettings(BaseModel):
    """The settings of an attestation campaign; each run is one person of the audience."""

    model_config = ConfigDict(extra="forbid")

    policy: Policy
    channel: str = Field(default="file", min_length=1, description="Delivery channel of requests and reminders.")
    email_column: str = Field(
        default="email",
        description="The audience column with each person's address; it "
        "is also the run key unless the audience names one.",
    )
    templates: str = Field(default="email/attestation", description="Folder with request/ and reminder/.")
    remind_every: timedelta | None = Field(
        default=None, description="Send a reminder this long after the request (ISO 8601, e.g. P3D) while unanswered."
    )
    reminders: int = Field(default=2, ge=0, le=10, description="At most this many reminders, remind_every apart.")

    @field_validator("email_column")
    @classmethod
    def _column(cls, value: str) -> str:
        if not COLUMN.fullmatch(value):
            raise ValueError("must be a column name: letters, digits, _ - . or spaces, starting with a letter or _")
        return value

    @field_validator("templates")
    @classmethod
    def _folder(cls, value: str) -> str:
        if not FOLDER.fullmatch(value):
            raise ValueError("must be a relative folder such as email/attestation")
        return value

    @field_validator("remind_every")
    @classmethod
    def _reminder_interval(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not MIN_REMINDER <= value <= MAX_REMINDER:
            raise ValueError("must be between one hour (PT1H) and a year (P365D)")
        return value

    @model_validator(mode="after")
    def _reminders_need_an_interval(self) -> AttestationSettings:
        if "reminders" in self.model_fields_set and self.reminders and self.remind_every is None:
            raise ValueError("reminders needs remind_every (how long after the request, e.g. P3D)")
        return self

    @property
    def reminder_count(self) -> int:
        return self.reminders if self.remind_every is not None else 0

    def recipient(self, attributes: Mapping[str, Any]) -> str:
        return str(attributes.get(self.email_column) or "").strip()

    def target_problem(self, attributes: Mapping[str, Any]) -> str | None:
        if "@" not in self.recipient(attributes):
            return f"no address in {self.email_column!r} (where the request goes)"
        return None
