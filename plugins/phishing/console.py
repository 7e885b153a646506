"""The simulation's tabs on a campaign's console page: By User (seed 001's events per user, filtered, sorted, paged,
with a selection to resend or clear), By Group and By Attack (users at each event). Each has an Export link; the
changes are the kind's own console routes (console_routes.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from campaignkit.core import CampaignkitError, ConsoleTab

from .results import ResultsQuery, by_attack, by_group, by_user
from .vocabulary import BY_ATTACK, BY_GROUP, BY_USER, COUNTS, DELIVERY_STATUSES, EVENTS

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

PAGE_SIZE = 50
FILTERS = ("delivery", "event", "group", "attack", "search", "cycle")
TIME_COLUMNS = tuple(shown for column, shown in EVENTS if column != "delivery_at")


def results_tab(runtime: Runtime, tab: str, campaign_id: str, query: Mapping[str, str]) -> ConsoleTab | None:
    chosen = {name: (query.get(name) or "").strip() for name in FILTERS}
    try:
        cycle = int(chosen["cycle"]) if chosen["cycle"] else None
        page = max(int(query.get("page") or 1), 1)
    except ValueError:
        raise CampaignkitError("cycle and page: whole numbers") from None
    if tab in (BY_GROUP.title, BY_ATTACK.title):
        listing = BY_GROUP if tab == BY_GROUP.title else BY_ATTACK
        rows = by_group(runtime, campaign_id, cycle) if listing is BY_GROUP else by_attack(runtime, campaign_id, cycle)
        by = "group" if listing is BY_GROUP else "attack"
        return ConsoleTab("console/phishing/counts.html", {
            "tab": tab, "campaign_id": campaign_id, "columns": listing.columns, "label": listing.columns[0],
            "counts": COUNTS, "rows": rows, "cycle": chosen["cycle"],
            "export": f"/campaigns/{campaign_id}/results/export?" + urlencode(
                {"by": by, **({"cycle": cycle} if cycle is not None else {})})})
    if tab != BY_USER.title:
        return None
    sort = (query.get("sort") or "user").strip()
    results = ResultsQuery(campaign_id, delivery=chosen["delivery"] or None, event=chosen["event"] or None,
                           group=chosen["group"] or None, attack=chosen["attack"] or None,
                           search=chosen["search"] or None, cycle=cycle, sort=sort.lstrip("-"),
                           descending=sort.startswith("-"), limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    rows = by_user(runtime, results)

    def at(**changes: Any) -> str:
        params = {"tab": tab, **chosen, "sort": sort, "page": page, **changes}
        return f"/campaigns/{campaign_id}?" + urlencode({k: v for k, v in params.items() if v not in ("", None, 1)})

    filtered = {"by": "user", **{k: v for k, v in chosen.items() if v}, **({"sort": sort} if sort != "user" else {})}
    return ConsoleTab("console/phishing/by_user.html", {
        "tab": tab, "campaign_id": campaign_id, "chosen": chosen, "sort": sort, "sorts": BY_USER.sorts,
        "statuses": (*DELIVERY_STATUSES, "Not sent"), "events": tuple(shown for _, shown in EVENTS[2:]),
        "time_columns": TIME_COLUMNS, "rows": [_shown(row) for row in rows[:PAGE_SIZE]],
        "export": f"/campaigns/{campaign_id}/results/export?" + urlencode(filtered),
        "action": f"/campaigns/{campaign_id}/results/selected", "done": query.get("done") or "",
        "newer": at(page=page - 1) if page > 1 else None,
        "older": at(page=page + 1) if len(rows) > PAGE_SIZE else None,
    })


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """Times short enough for ten columns (month-day hour:minute; the cell's title has the full UTC time); the rest
    as it is."""
    shown: dict[str, Any] = {}
    for key, value in row.items():
        shown[key] = f"{value:%m-%d %H:%M}" if hasattr(value, "strftime") else "" if value is None else value
        shown[f"{key} (full)"] = f"{value:%Y-%m-%d %H:%M:%S} UTC" if hasattr(value, "strftime") else ""
    return shown
