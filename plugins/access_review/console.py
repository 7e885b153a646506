"""The access review's Run History tab on a campaign's console page: seed 000's columns, a filter on each, sort,
paging and the counts per Response Status; a campaign that has not begun has no history yet. Its Export link
downloads the filtered history as CSV, and operators (not auditors) get a Retry failed enforcement button on a review
that revokes; both are the kind's own console routes (console_routes.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from campaignkit.core import CampaignkitError, ConsoleTab, find_campaign

from .history import COLUMNS, HistoryQuery, history_page, history_summary
from .settings import AccessReviewSettings
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

    filtered = {"format": "csv", **{k: v for k, v in chosen.items() if v}, **({"sort": sort} if sort != "user" else {})}
    revokes = AccessReviewSettings.model_validate(find_campaign(runtime, campaign_id).settings).on_revoke == "revoke"
    return ConsoleTab("console/access_review/run_history.html", {
        "campaign_id": campaign_id, "tab": TAB, "columns": COLUMNS, "chosen": chosen, "sort": sort,
        "export": f"/campaigns/{campaign_id}/history/export?" + urlencode(filtered),
        # Operators only (the template asks person.may_operate): the failed enforcement of the cycle shown, or of the
        # latest cycle; the confirmation page says which and how many.
        "retry": f"/campaigns/{campaign_id}/retry-enforcement" + (f"?cycle={cycle}" if cycle is not None else "")
        if revokes else None,
        "retried": _retried(query.get("retried")),
        "statuses": STATUSES, "results": RESULTS, "sorts": HISTORY.sorts,
        "rows": [{column: _shown(row[column]) for column in COLUMNS} for row in rows[:PAGE_SIZE]],
        "counts": history_summary(runtime, campaign_id, cycle),
        "newer": at(page=page - 1) if page > 1 else None,
        "older": at(page=page + 1) if len(rows) > PAGE_SIZE else None,
    })


def _retried(value: str | None) -> str | None:
    """What the confirmation's redirect tells the operator (``retried=N``)."""
    if not value or not value.isdigit():
        return None
    if value == "0":
        return "There was no failed enforcement to retry."
    return f"{value} failed enforcement(s) sent back to the enforcement action: the workers retry them now."


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return f"{value:%Y-%m-%d %H:%M:%S} UTC"
    return str(value)
