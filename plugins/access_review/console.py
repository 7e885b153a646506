"""The access review's Run History tab on a campaign's console page: seed 000's columns, a filter on each, sort,
paging and the counts per Response Status; a campaign that has not begun has no history yet."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from campaignkit.core import CampaignkitError, ConsoleTab

from .history import COLUMNS, HistoryQuery, history_page, history_summary
from .vocabulary import HISTORY, RESULTS, STATUSES

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

TAB = HISTORY.title
PAGE_SIZE = 50
FILTERS = ("status", "result", "approver", "application", "cycle")


def run_history_tab(runtime: Runtime, campaign_id: str, query: Mapping[str, str]) -> ConsoleTab:
    from campaignkit.core.campaigns.queries import campaign_summary

    summary = campaign_summary(runtime, campaign_id)
    if not summary["runs_by_status"] and summary["state"] in ("draft", "scheduled"):
        upcoming = [c["cycle_at"] for c in summary["cycles"] if c["status"] == "scheduled"]
        when = f"; it is scheduled for {min(upcoming):%Y-%m-%d %H:%M} UTC" if upcoming else ""
        return ConsoleTab("console/access_review/not_begun.html", {"message": f"The campaign has not begun{when}: "
                                                                              "its history starts when it does."})
    chosen = {name: (query.get(name) or "").strip() for name in FILTERS}
    sort = (query.get("sort") or "user").strip()
    try:
        cycle = int(chosen["cycle"]) if chosen["cycle"] else None
        page = max(int(query.get("page") or 1), 1)
    except ValueError:
        raise CampaignkitError("cycle and page: whole numbers") from None
    HISTORY.check({"status": chosen["status"] or None, "result": chosen["result"] or None}, sort.lstrip("-"))
    rows = history_page(runtime, HistoryQuery(
        campaign_id, status=chosen["status"] or None, result=chosen["result"] or None,
        approver=chosen["approver"] or None, application=chosen["application"] or None, cycle=cycle,
        sort=sort.lstrip("-"), descending=sort.startswith("-"), limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE))

    def at(**changes: Any) -> str:
        params = {"tab": TAB, **chosen, "sort": sort, "page": page, **changes}
        return f"/campaigns/{campaign_id}?" + urlencode({k: v for k, v in params.items() if v not in ("", None, 1)})

    return ConsoleTab("console/access_review/run_history.html", {
        "campaign_id": campaign_id, "tab": TAB, "columns": COLUMNS, "chosen": chosen, "sort": sort,
        "statuses": STATUSES, "results": RESULTS, "sorts": HISTORY.sorts,
        "rows": [{column: _shown(row[column]) for column in COLUMNS} for row in rows[:PAGE_SIZE]],
        "counts": history_summary(runtime, campaign_id, cycle),
        "newer": at(page=page - 1) if page > 1 else None,
        "older": at(page=page + 1) if len(rows) > PAGE_SIZE else None,
    })


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return f"{value:%Y-%m-%d %H:%M:%S} UTC"
    return str(value)
