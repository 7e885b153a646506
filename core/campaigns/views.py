"""What a campaign kind (or any plugin) reads about campaigns and runs: plain, read-only views, so that no plugin
queries campaignkit's tables, whose shape may change between releases.

A campaign's runs stream in pages of PAGE, each read in its own short transaction, so that a listing of 100 000 runs
keeps memory flat and never holds SQLite's lock (or a PostgreSQL snapshot) while its caller works.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, exists, select

from ..db import reading
from ..db.schema import ENTRIES, FINAL_STATUSES, campaign_versions, campaigns, events, launches, runs
from ..errors import NotFound

if TYPE_CHECKING:
    from ..runtime import Runtime

PAGE = 1000


@dataclass(frozen=True)
class CampaignView:
    """A campaign as it is now: ``settings`` are its current version's (a run keeps those it started with)."""

    id: str
    name: str
    folder: str | None
    kind: str
    state: str  # draft, scheduled, in_progress, paused, completed, terminated
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class RunView:
    """One target's pass through a campaign: where it is, the facets its kind keeps, and the events it has been sent
    that it has not taken yet (``pending_events``: a confirmation recorded, not yet applied by a worker)."""

    id: int
    campaign_id: str
    cycle: int  # the launch it belongs to
    key: str
    target: Mapping[str, Any]
    status: str  # pending, active, waiting, completed, failed, terminated
    node: str | None
    assignee: str | None
    response: str | None
    response_at: datetime | None
    result: str | None
    settings: Mapping[str, Any]  # the settings of the campaign version the run started on
    pending_events: frozenset[str]

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES


def find_campaign(runtime: Runtime, reference: str, *, kind: str | None = None) -> CampaignView:
    """The campaign ``reference`` names (its id, a unique id prefix, or its name), of ``kind`` if given; NotFound
    (one line, for the CLI) if none or several match."""
    what = f"{kind} campaign" if kind else "campaign"
    query = (select(campaigns.c.id, campaigns.c.name, campaigns.c.folder, campaigns.c.kind, campaigns.c.state,
                    campaign_versions.c.definition)
             .join(campaign_versions, campaign_versions.c.id == campaigns.c.current_version_id)
             .where((campaigns.c.id == reference) | (campaigns.c.name == reference)
                    | campaigns.c.id.startswith(reference, autoescape=True)))
    if kind is not None:
        query = query.where(campaigns.c.kind == kind)
    with reading(runtime.engine) as conn:
        found = {row.id: row for row in conn.execute(query)}
    if len(found) > 1:
        raise NotFound(f"{reference!r} matches {len(found)} {what}s; give more of the id")
    if not found:
        raise NotFound(f"no {what} {reference!r}")
    (row,) = found.values()
    return CampaignView(row.id, row.name, row.folder, row.kind, row.state, _settings(row.definition))


def latest_cycle(runtime: Runtime, campaign_id: str) -> int | None:
    """The campaign's latest cycle that has runs, or None before its first launch. Targets entered since (enter_target)
    go into launches of their own: one of those only when no launched cycle has runs."""
    query = (select(launches.c.id).where(launches.c.campaign_id == campaign_id,
                                         exists().where(runs.c.launch_id == launches.c.id))
             .order_by(launches.c.status == ENTRIES, launches.c.id.desc()).limit(1))
    with reading(runtime.engine) as conn:
        latest = conn.execute(query).scalar()
    return int(latest) if latest is not None else None


def run_view(runtime: Runtime, run_id: int, *, kind: str | None = None) -> RunView | None:
    """Run ``run_id`` (in a campaign of ``kind``, if given), or None if there is no such run."""
    query = _runs().where(runs.c.id == run_id)
    if kind is not None:
        query = query.join(campaigns, campaigns.c.id == runs.c.campaign_id).where(campaigns.c.kind == kind)
    with reading(runtime.engine) as conn:
        views = _views(conn, conn.execute(query).all(), {})
    return views[0] if views else None


def campaign_runs(runtime: Runtime, campaign_id: str, *, cycle: int | None = None) -> Iterator[RunView]:
    """The runs of a campaign (of one cycle, if given), cycle by cycle, each in key order: a stream, read a page at a
    time along the (cycle, key) index."""
    settings_by_version: dict[int, Mapping[str, Any]] = {}
    query = _runs().where(runs.c.campaign_id == campaign_id).order_by(runs.c.launch_id, runs.c.target_key)
    if cycle is not None:
        query = query.where(runs.c.launch_id == cycle)
    after: tuple[int, str] | None = None
    while True:
        page = query if after is None else query.where(
            (runs.c.launch_id > after[0]) | ((runs.c.launch_id == after[0]) & (runs.c.target_key > after[1])))
        with reading(runtime.engine) as conn:
            rows = conn.execute(page.limit(PAGE)).all()
            views = _views(conn, rows, settings_by_version)
        yield from views
        if len(rows) < PAGE:
            return
        after = (rows[-1].launch_id, rows[-1].target_key)


def _runs() -> Select[Any]:
    return select(runs.c.id, runs.c.campaign_id, runs.c.launch_id, runs.c.version_id, runs.c.target_key,
                  runs.c.target, runs.c.status, runs.c.current_node, runs.c.assignee, runs.c.response,
                  runs.c.response_at, runs.c.result)


def _views(conn: Connection, rows: Sequence[Any], settings_by_version: dict[int, Mapping[str, Any]]) -> list[RunView]:
    """Rows as views, with their pending events and their version's settings (one query each per page)."""
    if not rows:
        return []
    pending: dict[int, set[str]] = {}
    for run_id, name in conn.execute(select(events.c.run_id, events.c.name).where(
            events.c.run_id.in_([row.id for row in rows]), events.c.consumed_at.is_(None))):
        pending.setdefault(run_id, set()).add(name)
    missing = {row.version_id for row in rows} - settings_by_version.keys()
    if missing:
        for version_id, definition in conn.execute(select(campaign_versions.c.id, campaign_versions.c.definition)
                                                   .where(campaign_versions.c.id.in_(missing))):
            settings_by_version[version_id] = _settings(definition)
    return [RunView(int(row.id), row.campaign_id, int(row.launch_id), row.target_key, dict(row.target or {}),
                    row.status, row.current_node, row.assignee, row.response, row.response_at, row.result,
                    settings_by_version[row.version_id], frozenset(pending.get(row.id, ())))
            for row in rows]


def _settings(definition: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict((definition or {}).get("settings") or {})
