"""The settings of a phishing simulation (a campaign's ``settings:``): the audience's columns, the attacks and how
they are assigned, when the emails go out, how long links work, the scanner rules and the training."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from campaignkit.core.definitions.workflow import PositiveDuration, RetryPolicy

from .planning import SendingSettings

ATTACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}$")
AttackKind = Literal["click", "credentials", "attachment"]


class Attack(BaseModel):
    """One simulated phishing email: its templates (``<template>/subject.txt``, ``body.txt``, optional
    ``body.html``), who it claims to come from, and what the link leads to."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Shown in the results By Attack; unique in the campaign.")
    template: str = Field(description="Folder of the email's templates under the template folders.")
    sender: str = Field(description="The From address the email shows, e.g. 'IT Service Desk <it@examp1e.test>'.")
    kind: AttackKind = Field(default="click", description="click: the link opens the awareness page; credentials: "
                             "a landing page with a form (whatever is typed is never stored); attachment: a tracked "
                             "download.")
    landing_page: str | None = Field(default=None, description="A credentials attack's landing page template "
                                     "(HTML); default: pages/phishing/sign_in.html.")
    attachment_name: str = Field(default="invoice.html", description="The file an attachment attack downloads.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not ATTACK_NAME.match(value):
            raise ValueError("letters, digits, space, _ . - only, up to 100, starting with a letter or digit")
        return value


class Training(BaseModel):
    """The training assigned after the simulation: which provider and course, and to whom."""

    model_config = ConfigDict(extra="forbid")

    assign: Literal["never", "on_click", "on_credentials", "everyone"] = Field(
        default="on_click", description="on_click: to whoever clicked (or entered credentials); on_credentials: "
        "only to whoever entered credentials; everyone: to every recipient when their observation ends.")
    provider: str = Field(default="builtin", description="The training provider (register_training_providers).")
    course: str = Field(default="phishing-basics", description="The provider's course.")
    remind_every: PositiveDuration | None = Field(default=timedelta(days=3),
                                                  description="Remind who has not finished the training.")
    reminders: int = Field(default=3, ge=0, le=20, description="At most this many reminders.")


class Scanners(BaseModel):
    """How hits from mail-security scanners are told from people (docs/phishing.md#scanner-filtering)."""

    model_config = ConfigDict(extra="forbid")

    user_agents: list[str] = Field(default_factory=list, description="Extra user-agent substrings of scanners "
                                   "(case aside), besides the built-in list.")
    networks: list[str] = Field(default_factory=list, description="Address ranges (CIDR) of scanners.")
    seconds_after_delivery: float = Field(default=10, ge=0, le=3600, description="A hit this soon after the email "
                                          "was sent is a scanner's.")
    confirm_clicks: bool = Field(default=False, description="Count a click only once the page's script confirms "
                                 "it (scanners rarely run scripts).")

    @field_validator("networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an address range like 192.0.2.0/24") from None
        return value


class PhishingSettings(BaseModel):
    """A phishing-awareness simulation: one run per recipient."""

    model_config = ConfigDict(extra="forbid")

    email_column: str = "email"
    name_column: str = "name"
    groups_column: str = Field(default="groups", description="Groups of the recipient, separated by ';' or '|'.")
    time_zone_column: str = Field(default="time_zone", description="The recipient's IANA time zone.")
    attacks: list[Attack] = Field(min_length=1, description="The simulated emails.")
    assignment: Literal["same", "random"] = Field(
        default="random", description="same: every recipient gets the first attack; random: an attack at random "
        "per recipient, recorded on the run.")
    channel: str = Field(default="smtp", description="The sending profile: a delivery channel.")
    return_path: str | None = Field(
        default=None, description="Where delivery status notifications go, as 'bounces@example.org': each email "
        "is sent from bounces+<token>@example.org (VERP) asking for DSNs. Unset: no delivery notifications.")
    sending: SendingSettings = Field(default_factory=SendingSettings, description="When the emails go out.")
    observe_for: PositiveDuration = Field(default=timedelta(days=14), description="How long after its email a "
                                          "recipient's opens, clicks and reports are awaited.")
    link_grace: timedelta = Field(default=timedelta(days=7), description="Links keep working this long after the "
                                  "observation ends.")
    scanners: Scanners = Field(default_factory=Scanners)
    training: Training = Field(default_factory=Training)
    retry: RetryPolicy | None = Field(default=None, description="Attempts and backoff of a send; unset: five "
                                      "attempts a minute apart.")

    @field_validator("return_path")
    @classmethod
    def _return_path(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}", value):
            raise ValueError(f"{value!r}: an address like bounces@example.org (no '+', no display name)")
        return value

    @field_validator("link_grace")
    @classmethod
    def _grace(cls, value: timedelta) -> timedelta:
        if value < timedelta(0) or value > timedelta(days=365):
            raise ValueError("between 0 and 365 days")
        return value

    @model_validator(mode="after")
    def _unique_attacks(self) -> PhishingSettings:
        names = [attack.name for attack in self.attacks]
        if len(set(names)) != len(names):
            repeated = sorted({name for name in names if names.count(name) > 1})
            raise ValueError(f"attacks: names must be unique; repeated: {', '.join(repeated)}")
        return self

    def attack(self, name: str) -> Attack | None:
        return next((attack for attack in self.attacks if attack.name == name), None)

    def target_problem(self, attributes: Mapping[str, Any]) -> str | None:
        """Why a row cannot be sent to: an email address is what a simulation needs."""
        address = str(attributes.get(self.email_column) or "").strip()
        if not address or "@" not in address:
            return f"{self.email_column!r} is not an email address"
        return None

    def groups(self, attributes: Mapping[str, Any]) -> list[str]:
        raw = attributes.get(self.groups_column)
        items = [str(item) for item in raw] if isinstance(raw, list) else re.split(r"[;|]", str(raw or ""))
        return sorted({item.strip()[:200] for item in items if item.strip()})
