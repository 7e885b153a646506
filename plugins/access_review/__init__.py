"""Bundled plugin: the access_review campaign kind (see kind.py)."""

from __future__ import annotations

from campaignkit.core import hookimpl
from campaignkit.core.kinds import CampaignKind

from .kind import AccessReview


@hookimpl
def register_campaign_kinds() -> list[type[CampaignKind]]:
    return [AccessReview]
