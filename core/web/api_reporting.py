"""The API's campaign report (any account's token, as every GET): what `campaignkit campaign report` prints and the
chart on the campaign's console page draws, from the same function (core/campaigns/reporting.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ..campaigns.reporting import campaign_report
from ..runtime import Runtime


def api_reporting_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api/campaigns/{campaign_id}")

    @router.get("/report")
    def report(
        campaign_id: str,
        by: Literal["day", "hour"] = "day",
        since: Annotated[datetime | None, Query(description="from this time (ISO 8601; UTC without an offset), "
                                                            "rounded down; default: the first activity")] = None,
        until: Annotated[datetime | None, Query(description="up to this time, rounded up; default: now, or the "
                                                            "last activity of a campaign that has ended")] = None,
        node: Annotated[str | None, Query(max_length=100, description="this node's visits instead of the "
                                                                       "campaign's runs")] = None,
    ) -> dict[str, Any]:
        """Counts per day or hour (UTC): runs that entered, completed and failed (with ``node``: that node's visits
        started, finished ok and failed), messages sent and events received, every period listed, zeros included;
        their totals; and each node's counts over the same time. 404 for an unknown campaign, 400 for an unknown
        node or more than 10 000 periods."""
        return campaign_report(runtime, campaign_id, by=by, since=since, until=until, node=node).as_json()

    return router
