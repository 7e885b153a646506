"""Access-review run history: User, Application, Approver, Response Status, Action Time, Result.

Everything is computed in SQL from indexed run columns, so a page and the counts stay fast on big campaigns. A page
(history_page) and the CSV export (history_csv: `history --format csv`, the console's and the API's exports) run
the same statement with the same filters and order.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, func, select

from campaignkit.core.csv_export import csv_chunks
from campaignkit.core.db import reading
from campaignkit.core.db.schema import campaign_versions, campaigns, runs
from campaignkit.core.errors import CampaignkitError

from .settings import AccessReviewSettings
from .vocabulary import HISTORY, STATUSES

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

COLUMNS = list(HISTORY.columns)

# No response yet is Pending Response; termination writes "Terminated" into runs without one.
RESPONSE_STATUS: ColumnElement[str] = func.coalesce(runs.c.response, "Pending Response")


@dataclass(frozen=True)
class HistoryQuery:
    campaign_id: str
    status: str | None = None
    result: str | None = None
    approver: str | None = None
    application: str | None = None
    cycle: int | None = None
    sort: str = "user"
    descending: bool = False
    limit: int | None = 100  # None: every row (the CSV export only; a page always has a limit)
    offset: int = 0

    def check(self) -> None:
        HISTORY.check({"status": self.status, "result": self.result}, self.sort)


def _columns(campaign_id: str, conn: Any) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The target attributes holding user and application, from the campaign's settings."""
    definition = conn.execute(select(campaign_versions.c.definition).join(
        campaigns, campaigns.c.current_version_id == campaign_versions.c.id).where(campaigns.c.id == campaign_id)
    ).scalar()
    if definition is None:
        raise CampaignkitError(f"no campaign {campaign_id!r}")
    if definition.get("kind") != "access_review":
        raise CampaignkitError("run history with these columns is for access_review campaigns")
    settings = AccessReviewSettings.model_validate(definition.get("settings") or {})
    return runs.c.target[settings.user_column].as_string(), runs.c.target[settings.application_column].as_string()


def _filtered(query: HistoryQuery, user: Any, application: Any, statement: Select[Any]) -> Select[Any]:
    statement = statement.where(runs.c.campaign_id == query.campaign_id)
    if query.status:
        statement = statement.where(*_status_condition(query.status))
    if query.result:
        statement = statement.where(runs.c.result == query.result)
    if query.approver:
        statement = statement.where(runs.c.assignee == query.approver)
    if query.application:
        statement = statement.where(application == query.application)
    if query.cycle is not None:
        statement = statement.where(runs.c.launch_id == query.cycle)
    return statement


def _status_condition(status: str) -> tuple[ColumnElement[bool], ...]:
    """The filter for one Response Status, on the (campaign_id, response, target_key) index."""
    return (runs.c.response.is_(None),) if status == "Pending Response" else (runs.c.response == status,)


def _statement(query: HistoryQuery, conn: Any) -> Select[Any]:
    """The history's rows for ``query``: its filters, its order, its limit and offset."""
    user, application = _columns(query.campaign_id, conn)
    # The target key is "user|application", so its index gives the user order for free.
    sorts = {"user": runs.c.target_key, "application": application, "approver": runs.c.assignee,
             "status": runs.c.response, "time": runs.c.response_at, "result": runs.c.result, "id": runs.c.id}
    order = sorts[query.sort].desc() if query.descending else sorts[query.sort].asc()
    statement = select(runs.c.id, user.label("User"), application.label("Application"),
                       runs.c.assignee.label("Approver"), RESPONSE_STATUS.label("Response Status"),
                       runs.c.response_at.label("Action Time"), runs.c.result.label("Result"))
    statement = _filtered(query, user, application, statement).order_by(order, runs.c.id)
    return statement.limit(query.limit).offset(query.offset or None)


def history_page(runtime: Runtime, query: HistoryQuery) -> list[dict[str, Any]]:
    query.check()
    if query.limit is None:
        raise CampaignkitError("a page of the run history needs a limit (history_csv streams all of it)")
    with reading(runtime.engine) as conn:
        rows = conn.execute(_statement(query, conn)).mappings().all()
    return [{**row, "Result": row["Result"] or ""} for row in rows]


def history_csv(runtime: Runtime, query: HistoryQuery, rows_per_chunk: int = 1000) -> Generator[str]:
    """The history as CSV text in chunks: a header of COLUMNS, then each row of ``query`` (as history_page filters
    and orders them, times in ISO 8601, empty cells for none) through core's formula-safe CsvWriter.

    The query (its filters, its sort, the campaign and its kind) is checked now, so that a mistake is an error
    before the first byte rather than a broken download. The rows then come from one statement read
    ``rows_per_chunk`` at a time (a server-side cursor on PostgreSQL), so memory stays flat over a million runs,
    and from one read transaction: a consistent snapshot, where pages read one after the other would skip or repeat
    runs whose status or result changed meanwhile under a sort by them. Close the generator if you stop early: the
    transaction ends with it.
    """
    query.check()
    with reading(runtime.engine) as conn:
        statement = _statement(query, conn)
    return _csv_chunks(runtime, statement, rows_per_chunk)


def _csv_chunks(runtime: Runtime, statement: Select[Any], rows_per_chunk: int) -> Generator[str]:
    def rows() -> Iterator[Mapping[str, Any]]:
        with reading(runtime.engine) as conn:
            result = conn.execute(statement.execution_options(yield_per=rows_per_chunk)).mappings()
            for chunk in result.partitions():
                yield from chunk

    yield from csv_chunks(COLUMNS, rows(), rows_per_chunk)


def history_summary(runtime: Runtime, campaign_id: str, cycle: int | None = None) -> dict[str, int]:
    """How many runs have each Response Status (every status listed, zero included).

    One range count per status on the (campaign_id, response, ...) index: on SQLite that is a third faster than a
    GROUP BY over the same index, which matters at a million runs.
    """
    with reading(runtime.engine) as conn:
        _columns(campaign_id, conn)
        counts = {}
        for status in STATUSES:
            response = runs.c.response.is_(None) if status == "Pending Response" else runs.c.response == status
            statement = select(func.count()).select_from(runs).where(runs.c.campaign_id == campaign_id, response)
            if cycle is not None:
                statement = statement.where(runs.c.launch_id == cycle)
            counts[status] = int(conn.execute(statement).scalar_one())
    return counts
