"""Read-side queries for listings: campaigns, runs (filtered, searched, sorted, paged in SQL) and timelines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, or_, select

from ..db import reading
from ..db.schema import campaign_versions, campaigns, launches, runs, step_records
from ..definitions.workflow import Workflow
from ..errors import CampaignkitError, NotFound

if TYPE_CHECKING:
    from ..runtime import Runtime

RUN_SORTS = {
    "id": runs.c.id,
    "target": runs.c.target_key,
    "status": runs.c.status,
    "updated": runs.c.updated_at,
    "created": runs.c.id,  # runs are created in id order, and the (campaign_id, id) index has that order
    "due": runs.c.due_at,
}


def list_campaigns(runtime: Runtime) -> list[dict[str, Any]]:
    live = (select(func.count()).where(runs.c.campaign_id == campaigns.c.id,
                                       runs.c.status.in_(("pending", "active", "waiting")))
            .correlate(campaigns).scalar_subquery())
    total = select(func.count()).where(runs.c.campaign_id == campaigns.c.id).correlate(campaigns).scalar_subquery()
    query = (select(campaigns.c.id, campaigns.c.name, campaigns.c.folder, campaigns.c.kind, campaigns.c.state,
                    (func.cast(campaign_versions.c.major, campaigns.c.name.type) + "."
                     + func.cast(campaign_versions.c.minor, campaigns.c.name.type)).label("version"),
                    total.label("runs"), live.label("live_runs"), campaigns.c.updated_at)
             .join(campaign_versions, campaign_versions.c.id == campaigns.c.current_version_id)
             .order_by(campaigns.c.folder, campaigns.c.name))
    with reading(runtime.engine) as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def campaign_summary(runtime: Runtime, campaign_id: str) -> dict[str, Any]:
    """The campaign row with its version, run counts by status and its cycles."""
    with reading(runtime.engine) as conn:
        row = conn.execute(select(campaigns, campaign_versions.c.major, campaign_versions.c.minor,
                                  campaign_versions.c.source)
                           .join(campaign_versions, campaign_versions.c.id == campaigns.c.current_version_id)
                           .where(campaigns.c.id == campaign_id)).first()
        if row is None:
            raise NotFound(f"no campaign {campaign_id!r}")
        by_status = select(runs.c.status, func.count()).where(runs.c.campaign_id == campaign_id).group_by(runs.c.status)
        counts: dict[str, int] = {status: count for status, count in conn.execute(by_status)}
        cycles = [dict(r._mapping) for r in conn.execute(
            select(launches.c.id, launches.c.cycle_at, launches.c.status, launches.c.target_count,
                   launches.c.deadline_at).where(launches.c.campaign_id == campaign_id)
            .order_by(launches.c.cycle_at))]
    summary = dict(row._mapping)
    summary["version"] = f"{summary.pop('major')}.{summary.pop('minor')}"
    summary["runs_by_status"] = counts
    summary["cycles"] = cycles
    return summary


@dataclass(frozen=True)
class RunQuery:
    campaign_id: str
    status: str | None = None
    search: str | None = None
    cycle: int | None = None
    sort: str = "id"
    descending: bool = False
    limit: int = 100
    offset: int = 0

    def statement(self) -> Select[Any]:
        column = RUN_SORTS.get(self.sort)
        if column is None:
            raise CampaignkitError(f"--sort: unknown column {self.sort!r} (one of: {', '.join(RUN_SORTS)})")
        query = select(runs.c.id, runs.c.target_key, runs.c.status, runs.c.current_node, runs.c.launch_id,
                       runs.c.due_at, runs.c.error, runs.c.created_at, runs.c.updated_at, runs.c.finished_at
                       ).where(runs.c.campaign_id == self.campaign_id)
        if self.status:
            query = query.where(runs.c.status == self.status)
        if self.cycle is not None:
            query = query.where(runs.c.launch_id == self.cycle)
        if self.search:
            pattern = f"%{self.search}%"
            query = query.where(or_(runs.c.target_key.ilike(pattern), runs.c.current_node.ilike(pattern)))
        order = column.desc() if self.descending else column.asc()
        return query.order_by(order, runs.c.id).limit(self.limit).offset(self.offset)


def list_runs(runtime: Runtime, query: RunQuery) -> list[dict[str, Any]]:
    """One page of a campaign's runs; an unknown campaign is NotFound rather than an empty page."""
    with reading(runtime.engine) as conn:
        rows = [dict(row._mapping) for row in conn.execute(query.statement())]
        # Only an empty page needs the extra lookup, so the common case stays one query.
        if not rows and conn.execute(select(campaigns.c.id).where(campaigns.c.id == query.campaign_id)).first() is None:
            raise NotFound(f"no campaign {query.campaign_id!r}")
    return rows


def version_workflow(runtime: Runtime, version_id: int) -> Workflow:
    """The workflow a campaign version runs (a run keeps the version it started on)."""
    with reading(runtime.engine) as conn:
        definition = conn.execute(select(campaign_versions.c.definition)
                                  .where(campaign_versions.c.id == version_id)).scalar_one()
    return Workflow.model_validate(definition["workflow"])


def run_timeline(runtime: Runtime, run_id: int) -> dict[str, Any]:
    """The run and its step records in execution order, with the path of nodes and edges it took."""
    with reading(runtime.engine) as conn:
        run = conn.execute(select(runs, campaigns.c.name.label("campaign_name"))
                           .join(campaigns, campaigns.c.id == runs.c.campaign_id).where(runs.c.id == run_id)).first()
        if run is None:
            raise NotFound(f"no run {run_id}")
        steps = [dict(r._mapping) for r in conn.execute(
            select(step_records).where(step_records.c.run_id == run_id)
            .order_by(step_records.c.started_at, step_records.c.id))]
        # What the run's kind shows besides its steps (an access review: the digests that listed the run).
        kind = conn.execute(select(campaigns.c.kind).where(campaigns.c.id == run.campaign_id)).scalar_one()
        details = runtime.kind(kind).run_details(conn, run_id)
    info = dict(run._mapping)
    info["context"] = {k: v for k, v in (info["context"] or {}).items() if not k.startswith("_")}
    path = []
    for step in steps:
        path.append({"node": step["node_id"], "visit": step["visit"], "outcome": step["outcome"],
                     "edge": step["edge"]})
    return {**details, "run": info, "steps": steps, "path": path}
