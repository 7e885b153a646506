"""Read-side queries for listings: campaigns, runs (filtered, searched, sorted, paged in SQL) and timelines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select, type_coerce

from ..db import reading
from ..db.schema import UTCDateTime, campaign_versions, campaigns, launches, runs, step_records, targets
from ..definitions.workflow import Workflow
from ..errors import CampaignkitError, NotFound
from . import counts

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


def list_campaigns(runtime: Runtime, limit: int | None = None,
                   after: tuple[str, str, str] | None = None) -> list[dict[str, Any]]:
    """Campaigns in (folder, name, id) order with their version, next and last cycle, and runs (all, live) from the
    kept counts: every one, or ``limit`` of them after the campaign whose (folder, name, id) is ``after`` (keyset
    paging: the (folder, name) unique index serves the order, so a deep page costs what the first does)."""
    c = campaigns.c
    query = (select(c.id, c.name, c.folder, c.kind, c.state,
                    (func.cast(campaign_versions.c.major, c.name.type) + "."
                     + func.cast(campaign_versions.c.minor, c.name.type)).label("version"),
                    c.updated_at)
             .join(campaign_versions, campaign_versions.c.id == c.current_version_id)
             .order_by(c.folder, c.name, c.id))
    if after is not None:
        folder, name, campaign_id = after
        query = query.where(c.folder >= folder, or_(c.folder > folder, c.name > name,
                                                    and_(c.name == name, c.id > campaign_id)))
    if limit is not None:
        query = query.limit(limit)
    scheduled = case((launches.c.status == "scheduled", launches.c.cycle_at))
    launched = case((launches.c.status == "launched", launches.c.cycle_at))
    cycles = (select(launches.c.campaign_id, type_coerce(func.min(scheduled), UTCDateTime),
                     type_coerce(func.max(launched), UTCDateTime)).group_by(launches.c.campaign_id))
    with reading(runtime.engine) as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
        ids = [row["id"] for row in rows] if limit is not None else None  # a page: only its campaigns' figures
        kept = counts.totals(conn, ids)
        if ids is not None:
            cycles = cycles.where(launches.c.campaign_id.in_(ids))
        when = {campaign_id: (next_at, last_at) for campaign_id, next_at, last_at in conn.execute(cycles)}
    for row in rows:
        row["runs"], row["live_runs"] = kept.get(row["id"], (0, 0))
        row["next_cycle"], row["last_cycle"] = when.get(row["id"], (None, None))
    return rows


def contact(runtime: Runtime, key: str) -> dict[str, Any]:
    """A target across campaigns: its custom fields, its attributes as its latest run saw them, and every run."""
    with reading(runtime.engine) as conn:
        campaign_ids = list(conn.execute(select(campaigns.c.id)).scalars())
        # One lookup per campaign on its (campaign_id, target_key) index: no index on the key alone is needed.
        found = [dict(row._mapping) for row in conn.execute(
            select(runs.c.id, runs.c.campaign_id, campaigns.c.name.label("campaign_name"), campaigns.c.kind,
                   runs.c.launch_id, runs.c.status, runs.c.current_node, runs.c.target, runs.c.created_at,
                   runs.c.updated_at, runs.c.finished_at)
            .join(campaigns, campaigns.c.id == runs.c.campaign_id)
            .where(runs.c.campaign_id.in_(campaign_ids), runs.c.target_key == key).order_by(runs.c.id.desc()))]
        fields = conn.execute(select(targets.c.custom_fields, targets.c.updated_at).where(targets.c.key == key)).first()
    if not found and fields is None:
        raise NotFound(f"no contact {key!r}")
    attributes = found[0]["target"] if found else {}
    for run in found:
        del run["target"]
    return {"key": key, "attributes": attributes, "custom_fields": dict(fields.custom_fields) if fields else {},
            "custom_fields_updated_at": fields.updated_at if fields else None, "runs": found}


def campaign_summary(runtime: Runtime, campaign_id: str) -> dict[str, Any]:
    """The campaign row with its version, run counts by status and its cycles."""
    with reading(runtime.engine) as conn:
        row = conn.execute(select(campaigns, campaign_versions.c.major, campaign_versions.c.minor,
                                  campaign_versions.c.source)
                           .join(campaign_versions, campaign_versions.c.id == campaigns.c.current_version_id)
                           .where(campaigns.c.id == campaign_id)).first()
        if row is None:
            raise NotFound(f"no campaign {campaign_id!r}")
        by_status = counts.by_status(conn, campaign_id)
        by_cycle = counts.by_cycle(conn, campaign_id)
        cycles = [dict(r._mapping) for r in conn.execute(
            select(launches.c.id, launches.c.cycle_at, launches.c.status, launches.c.target_count,
                   launches.c.deadline_at).where(launches.c.campaign_id == campaign_id)
            .order_by(launches.c.cycle_at))]
    summary = dict(row._mapping)
    summary["version"] = f"{summary.pop('major')}.{summary.pop('minor')}"
    summary["runs_by_status"] = by_status
    summary["cycles"] = [{**cycle, "runs_by_status": by_cycle.get(cycle["id"], {})} for cycle in cycles]
    return summary


def node_counts(runtime: Runtime, campaign_id: str) -> dict[str, counts.NodeCounts]:
    """Each node's runs: entered, at it now (by status), left through each edge."""
    with reading(runtime.engine) as conn:
        return counts.by_node(conn, campaign_id)


@dataclass(frozen=True)
class RunQuery:
    """A page of a campaign's runs, in ``sort`` order then id, both ascending or both descending; NULLs (only
    ``due`` has them) after every value ascending, before every value descending, on every database. The page
    starts at ``offset``, or (keyset paging, as fast deep in a million runs as at the start) just past the run
    whose (sort value, id) is ``after``, or it is the page that ends just before ``before``."""

    campaign_id: str
    status: str | None = None
    search: str | None = None  # the start of the target key, ignoring (ASCII) case
    node: str | None = None  # the node the run is at
    cycle: int | None = None
    sort: str = "id"
    descending: bool = False
    limit: int = 100
    offset: int = 0
    after: tuple[Any, int] | None = None
    before: tuple[Any, int] | None = None

    def column(self) -> Any:
        column = RUN_SORTS.get(self.sort)
        if column is None:
            raise CampaignkitError(f"--sort: unknown column {self.sort!r} (one of: {', '.join(RUN_SORTS)})")
        return column

    def position(self, row: dict[str, Any]) -> tuple[Any, int]:
        """A row's place in this order: its sort value and id (what ``after`` and ``before`` take)."""
        return row[self.column().name], row["id"]

    def filters(self) -> tuple[Any, ...]:
        """What a position is relative to: the filters and the order (a cursor is valid only under the same)."""
        return self.campaign_id, self.status, self.search, self.node, self.cycle, self.sort, self.descending

    def statement(self, dialect: str = "sqlite") -> Select[Any]:
        column = self.column()
        query = select(runs.c.id, runs.c.target_key, runs.c.status, runs.c.current_node, runs.c.launch_id,
                       runs.c.due_at, runs.c.error, runs.c.created_at, runs.c.updated_at, runs.c.finished_at
                       ).where(runs.c.campaign_id == self.campaign_id)
        if self.status:
            query = query.where(runs.c.status == self.status)
        if self.cycle is not None:
            query = query.where(runs.c.launch_id == self.cycle)
        if self.node:
            query = query.where(runs.c.current_node == self.node)
        if self.search:
            query = query.where(_key_starts_with(self.search, dialect))
        # A page ending before a position is the page after it in the other direction, read back to front.
        descending = self.descending != (self.before is not None)
        start = self.before if self.before is not None else self.after
        if start is not None:
            query = query.where(*_past(column, start, descending))
        if column is runs.c.id:
            order = [runs.c.id.desc() if descending else runs.c.id.asc()]
        elif descending:
            order = [column.desc().nulls_first() if column.nullable else column.desc(), runs.c.id.desc()]
        else:
            order = [column.asc().nulls_last() if column.nullable else column.asc(), runs.c.id.asc()]
        return query.order_by(*order).limit(self.limit).offset(self.offset)


def _past(column: Any, start: tuple[Any, int], descending: bool) -> list[ColumnElement[bool]]:
    """The runs after ``start`` (sort value, id) in the order: a range on the sort column first, which the index on
    it serves, then past ``start`` among its equals. NULL sorts as above every value."""
    value, run_id = start
    if column is runs.c.id:
        return [runs.c.id < run_id if descending else runs.c.id > run_id]
    if value is None:  # among the NULLs: ascending they come last, descending first
        if descending:
            return [or_(column.is_not(None), runs.c.id < run_id)]
        return [column.is_(None), runs.c.id > run_id]
    if descending:
        return [column <= value, or_(column < value, runs.c.id < run_id)]
    beyond = or_(column > value, runs.c.id > run_id)
    if column.nullable:
        return [or_(column.is_(None), and_(column >= value, beyond))]
    return [column >= value, beyond]


def _key_starts_with(start: str, dialect: str) -> ColumnElement[bool]:
    """The run's target key starts with ``start``, case aside, as an index serves it (see the indexes of runs)."""
    if dialect == "postgresql":  # lower() folds every letter; LIKE's own characters in ``start`` are escaped
        escaped = start.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return func.lower(runs.c.target_key).like(escaped.lower() + "%", escape="\\")
    folded = "".join(c.lower() if c.isascii() else c for c in start)  # NOCASE folds ASCII letters only
    key = runs.c.target_key.collate("NOCASE")
    return and_(key >= folded, key < folded + "\U0010ffff")


def list_runs(runtime: Runtime, query: RunQuery) -> list[dict[str, Any]]:
    """One page of a campaign's runs, in the query's order; an unknown campaign is NotFound rather than an empty
    page."""
    with reading(runtime.engine) as conn:
        rows = [dict(row._mapping) for row in conn.execute(query.statement(conn.dialect.name))]
        # Only an empty page needs the extra lookup, so the common case stays one query.
        if not rows and conn.execute(select(campaigns.c.id).where(campaigns.c.id == query.campaign_id)).first() is None:
            raise NotFound(f"no campaign {query.campaign_id!r}")
    if query.before is not None:
        rows.reverse()
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
