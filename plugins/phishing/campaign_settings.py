"""A campaign's settings as the recipients' pages and the hit writer need them: read once, then again at most every
SECONDS, so that a new version takes effect without a restart and a burst of hits costs no query per hit."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from .settings import PhishingSettings

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

SECONDS = 30.0


class CampaignSettings:
    """Each campaign's settings, by id."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._found: dict[str, tuple[float, PhishingSettings]] = {}

    def fresh(self, campaign_id: str) -> PhishingSettings | None:
        """The settings if read lately, without touching the database (for the event loop)."""
        cached = self._found.get(campaign_id)
        return cached[1] if cached is not None and time.monotonic() - cached[0] < SECONDS else None

    async def of(self, campaign_id: str) -> PhishingSettings:
        cached = self.fresh(campaign_id)
        return cached if cached is not None else await run_in_threadpool(self.get, campaign_id)

    def get(self, campaign_id: str) -> PhishingSettings:
        cached = self.fresh(campaign_id)
        if cached is not None:
            return cached
        from campaignkit.core import find_campaign

        settings = PhishingSettings.model_validate(find_campaign(self.runtime, campaign_id).settings)
        self._found[campaign_id] = (time.monotonic(), settings)
        return settings
