"""A simulation's results: By User (each recipient's time of each event), By Group and By Attack (how many users
reached each event), as pages, CSV and JSON for the CLI, the API and the console.

All of it reads phishing_results (one row per run, its event times kept as they happen) on its (campaign_id, ...)
indexes: a page of By User is an index range (its group filter goes through phishing_groups), By Attack one GROUP
BY, By Group one GROUP BY over the users' sets of groups.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, Text, case, cast, func, select

from campaignkit.core.csv_export import csv_chunks
from campaignkit.core.db import reading
from campaignkit.core.db.schema import campaign_versions, phishing_groups, phishing_results

from .vocabulary import BY_USER, COUNTS, DELIVERY_STATUSES, EVENTS

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

R = phishing_results.c
EVENT_COLUMNS = {shown: column for column, shown in EVENTS}
SORTS: dict[str, ColumnElement[Any]] = {
    "user": R.target_key, "email": R.email, "attack": R.attack, "delivery": R.delivery, "sent": R.sent_at,
    "opened": R.opened_at, "clicked": R.clicked_at, "submitted": R.submitted_at, "reported": R.reported_at,
}


@dataclass(frozen=True)
class ResultsQuery:
    """Which rows of By User: its filters, sort, and page."""

    campaign_id: str
    delivery: str | None = None  # a status, or "Not sent"
    event: str | None = None  # users who reached this event (its name as shown)
    group: str | None = None
    attack: str | None = None
    search: str | None = None  # the start of the user's key (their address), case aside
    cycle: int | None = None
    sort: str = "user"
    descending: bool = False
    limit: int | None = 100
    offset: int = 0

    def check(self) -> None:
        BY_USER.check({"delivery": self.delivery, "event": self.event}, self.sort)

    def statement(self) -> Select[Any]:
        statement = select(phishing_results).where(R.campaign_id == self.campaign_id)
        if self.delivery == "Not sent":
            statement = statement.where(R.delivery.is_(None))
        elif self.delivery:
            statement = statement.where(R.delivery == self.delivery)
        if self.event:
            statement = statement.where(R[EVENT_COLUMNS[self.event]].is_not(None))
        if self.attack:
            statement = statement.where(R.attack == self.attack)
        if self.group:
            statement = statement.where(R.run_id.in_(select(phishing_groups.c.run_id).where(
                phishing_groups.c.campaign_id == self.campaign_id, phishing_groups.c.group_name == self.group)))
        if self.search:
            start = self.search.lower()
            statement = statement.where(func.lower(R.target_key) >= start,
                                        func.lower(R.target_key) < start + "\uffff")
        if self.cycle is not None:
            statement = statement.where(R.launch_id == self.cycle)
        column = SORTS[self.sort]
        statement = statement.order_by(column.desc() if self.descending else column.asc(), R.run_id)
        return statement.limit(self.limit).offset(self.offset or None)


def user_row(row: Any) -> dict[str, Any]:
    """One recipient's results as the listings show them: names, then each event's time."""
    detail = row.delivery_detail or {}
    found: dict[str, Any] = {"run_id": row.run_id, "User": row.name or row.target_key, "Email": row.email,
                             "Attack": row.attack, "Groups": "; ".join(row.groups or [])}
    for column, shown in EVENTS:
        found[shown] = getattr(row, column)
    found["Delivery Status"] = row.delivery or "Not sent"
    found["Delivery Time"] = row.delivery_at
    found["Delivery Detail"] = " ".join(str(detail[key]) for key in ("code", "text") if detail.get(key))
    found["Filtered Hits"] = row.filtered_hits
    return found


USER_COLUMNS = (*BY_USER.columns, "Delivery Time", "Delivery Detail", "Filtered Hits")


def by_user(runtime: Runtime, query: ResultsQuery) -> list[dict[str, Any]]:
    query.check()
    with reading(runtime.engine) as conn:
        return [user_row(row) for row in conn.execute(query.statement())]


def _counts(label: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    columns: list[ColumnElement[Any]] = [label, func.count().label("Users"), func.count(R.sent_at).label("Email sent")]
    columns += [func.sum(case((R.delivery == status, 1), else_=0)).label(status) for status in DELIVERY_STATUSES]
    columns += [func.count(R[column]).label(shown) for column, shown in EVENTS[2:]]
    return columns


def by_group(runtime: Runtime, campaign_id: str, cycle: int | None = None) -> list[dict[str, Any]]:
    """Per group, the users at each event. One scan of the campaign's results, counted per set of groups (a user
    in Finance and Managers counts once in each); the sets, far fewer than the users, are then added up per group.
    Joining every membership to its results row instead reads the rows at random, three times slower."""
    groups_text = cast(R.groups, Text)  # PostgreSQL's json has no equality: grouped by its text, written sorted
    statement = (select(*_counts(groups_text.label("Groups"))).where(R.campaign_id == campaign_id)
                 .group_by(groups_text))
    if cycle is not None:
        statement = statement.where(R.launch_id == cycle)
    totals: dict[str, dict[str, int]] = {}
    with reading(runtime.engine) as conn:
        for row in conn.execute(statement).mappings():
            for group in json.loads(row["Groups"]):
                counted = totals.setdefault(group, dict.fromkeys(COUNTS, 0))
                for name in COUNTS:
                    counted[name] += int(row[name] or 0)
    return [{"Group": group, **totals[group]} for group in sorted(totals)]


def by_attack(runtime: Runtime, campaign_id: str, cycle: int | None = None) -> list[dict[str, Any]]:
    """Every attack that is or was part of the campaign (any version's), with its counts; zero for one that sent
    nothing yet."""
    statement = (select(*_counts(R.attack.label("Attack"))).where(R.campaign_id == campaign_id)
                 .group_by(R.attack).order_by(R.attack))
    if cycle is not None:
        statement = statement.where(R.launch_id == cycle)
    with reading(runtime.engine) as conn:
        found = {row["Attack"]: _plain(row) for row in conn.execute(statement).mappings()}
        for definition in conn.execute(select(campaign_versions.c.definition)
                                       .where(campaign_versions.c.campaign_id == campaign_id)).scalars():
            for attack in (definition.get("settings") or {}).get("attacks") or []:
                name = str(attack.get("name") or "")
                if name and name not in found:
                    found[name] = {"Attack": name, **dict.fromkeys(COUNTS, 0)}
    return [found[name] for name in sorted(found)]


def _plain(row: Any) -> dict[str, Any]:
    return {key: int(value) if key in COUNTS else value for key, value in dict(row).items()}


def csv_text(columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Rows as CSV chunks through core's formula-safe writer; times in ISO 8601."""
    return csv_chunks(columns, rows)


def by_user_all(runtime: Runtime, query: ResultsQuery, chunk: int = 1000) -> Iterator[dict[str, Any]]:
    """Every row By User's filters select, read ``chunk`` at a time in one snapshot (for the CSV export)."""
    query.check()
    with reading(runtime.engine) as conn:
        statement = ResultsQuery(**{**query.__dict__, "limit": None, "offset": 0}).statement()
        for part in conn.execute(statement.execution_options(yield_per=chunk)).partitions():
            yield from (user_row(row) for row in part)

