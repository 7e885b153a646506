"""Access-review run history: User, Application, Approver, Response Status, Action Time, Result.

Everything is computed in SQL from indexed run columns, so a page and the counts stay fast on big campaigns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, func, select

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
    limit: int = 100
    offset: int = 0


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


def history_page(runtime: Runtime, query: HistoryQuery) -> list[dict[str, Any]]:
    HISTORY.check({"status": query.status, "result": query.result}, query.sort)
    with reading(runtime.engine) as conn:
        user, application = _columns(query.campaign_id, conn)
        # The target key is "user|application", so its index gives the user order for free.
        sorts = {"user": runs.c.target_key, "application": application, "approver": runs.c.assignee,
                 "status": runs.c.response, "time": runs.c.response_at, "result": runs.c.result, "id": runs.c.id}
        order = sorts[query.sort].desc() if query.descending else sorts[query.sort].asc()
        statement = select(runs.c.id, user.label("User"), application.label("Application"),
                           runs.c.assignee.label("Approver"), RESPONSE_STATUS.label("Response Status"),
                           runs.c.response_at.label("Action Time"), runs.c.result.label("Result"))
        statement = _filtered(query, user, application, statement).order_by(order, runs.c.id)
        rows = conn.execute(statement.limit(query.limit).offset(query.offset)).mappings().all()
    return [{**row, "Result": row["Result"] or ""} for row in rows]


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
