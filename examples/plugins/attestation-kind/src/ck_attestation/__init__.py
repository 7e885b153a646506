"""campaignkit plugin: the ``attestation`` campaign kind."""

from __future__ import annotations

from campaignkit.core import CampaignKind, hookimpl

from .kind import Attestation
from .settings import AttestationSettings, Policy

__all__ = ["Attestation", "AttestationSettings", "Policy", "register_campaign_kinds"]


@hookimpl
def register_campaign_kinds() -> list[type[CampaignKind]]:
    return [Attestation]
