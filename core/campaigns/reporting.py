"""Campaign reporting: per campaign and per node, what happened each day or hour (UTC) — runs that entered, completed
and failed, messages sent, events received — for `campaign report`, GET /api/campaigns/{id}/report and the chart on a
campaign's console page.

Why counts, and why kept this way: a report must stay fast at ten million step records, so it never reads the
ledger. report_counts holds one row per campaign, hour and node (a year of a ten-node campaign is 87 600 rows), kept
in the transaction that writes what it counts, so a report is never stale and needs no roll-up job:

- step records: the worker adds its batch's counts in its batch transaction (core/engine/report_tally.py, one
  statement per batch: in the engine's room, which this one imports).
  Only the worker writes step records. A row trigger made each record 40-80 % dearer to write on SQLite; a roll-up
  from a watermark on step_records.id would miss the waiting and retrying records later updated to ok or failed in
  place (they keep their id), and, on PostgreSQL, rows whose transaction commits after a later id's.
- events: a database trigger (migration 0009), since many code paths insert them, a few at a time, and only then is
  the node their run is at known.

On PostgreSQL the writers append to report_deltas instead, so that concurrent workers never wait on a shared counter
row; report_tally.fold moves them into report_counts every minute (the scheduler's fold job) and readers add up both
tables in one statement. Counts outlive the ledger: retention pruning of step records, or a phishing simulation's
Clear events, leaves them as they were (the report says what happened when).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select, union_all

from ..clock import utc
from ..db import is_postgres, reading
from ..db.schema import campaign_versions, campaigns, report_counts, report_deltas
from ..errors import CampaignkitError
from .views import find_campaign

if TYPE_CHECKING:
    from ..runtime import Runtime

BY = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
METRICS = ("entered", "completed", "failed", "sent", "events")
# What each metric reads for the whole campaign (runs) and for one node (visits).
CAMPAIGN_COLUMNS = ("runs_entered", "runs_completed", "runs_failed", "sent", "events")
NODE_COLUMNS = METRICS
MAX_PERIODS = 10_000  # a year hour by hour is 8 760
LIVE_CAMPAIGN = ("scheduled", "in_progress", "paused")
NO_NODE = ""  # events of runs that had not reached a node yet


class ReportProblem(CampaignkitError):
    """A report asked for in a way that cannot be answered (an unknown node, a period too long)."""


@dataclass(frozen=True)
class Counts:
    entered: int = 0
    completed: int = 0
    failed: int = 0
    sent: int = 0
    events: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    def values(self) -> tuple[int, ...]:
        return (self.entered, self.completed, self.failed, self.sent, self.events)

    def as_dict(self) -> dict[str, int]:
        return dict(zip(METRICS, self.values(), strict=True))


@dataclass(frozen=True)
class Period:
    start: datetime
    counts: Counts


@dataclass(frozen=True)
class Report:
    """A campaign's counts per period in [since, until), their totals, and each node's over the same time.

    For the whole campaign, entered/completed/failed count runs (a run entered with its first step, and ended
    completed or failed); for a node (``node``, and each of ``nodes``) they count visits of it (started, finished
    ok, failed). ``sent`` counts messages, ``events`` the events that arrived (at the node their run was at)."""

    campaign_id: str
    campaign_name: str
    by: str
    since: datetime
    until: datetime
    node: str | None
    periods: list[Period]
    totals: Counts
    nodes: dict[str, Counts] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """One row per period, for tables and CSV."""
        return [{"period": p.start.date().isoformat() if self.by == "day" else p.start, **p.counts.as_dict()}
                for p in self.periods]

    def node_rows(self) -> list[dict[str, Any]]:
        return [{"node": node, **counts.as_dict()} for node, counts in self.nodes.items()]

    def as_json(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "campaign_name": self.campaign_name, "by": self.by,
                "since": self.since.isoformat(), "until": self.until.isoformat(), "node": self.node,
                "timezone": "UTC", "counts": "runs" if self.node is None else "visits",
                "periods": [{"start": p.start.isoformat(), **p.counts.as_dict()} for p in self.periods],
                "totals": self.totals.as_dict(), "nodes": self.node_rows()}


def campaign_report(runtime: Runtime, reference: str, *, by: str = "day", since: datetime | None = None,
                    until: datetime | None = None, node: str | None = None, last: int | None = None) -> Report:
    """The report of the campaign ``reference`` names (id, unique id prefix or name).

    ``since`` defaults to the campaign's first activity and ``until`` to now (for a campaign that has ended, to its
    last activity; for one whose last activity is later than now, such as a clock set back, to that); both are
    rounded out to whole periods. ``last`` keeps only that many periods, ending at ``until``. Naive times are
    UTC."""
    if by not in BY:
        raise ReportProblem(f"by: {by!r} is not one of {', '.join(BY)}")
    step = BY[by]
    campaign = find_campaign(runtime, reference)
    with reading(runtime.engine) as conn:
        nodes_of_workflow = _workflow_nodes(conn, campaign.id)
        first, latest = _activity(conn, campaign.id)
        if until is None:
            now = runtime.clock.now()
            until = now if latest is None else max(now, latest) if campaign.state in LIVE_CAMPAIGN else latest
            until = _start(utc(until), by) + step
        else:
            until = _ceil(utc(until), by)
        since = _start(utc(since), by) if since is not None else _start(first, by) if first is not None \
            else until - step
        if last is not None:
            since = max(since, until - step * last)
        if since >= until:
            raise ReportProblem(f"since: {since.isoformat()} is not before until ({until.isoformat()})")
        if (until - since) / step > MAX_PERIODS:
            raise ReportProblem(f"{int((until - since) / step)} {by}s asked for; at most {MAX_PERIODS}: give a later "
                                f"since{' or report by day' if by == 'hour' else ''}")
        columns = CAMPAIGN_COLUMNS if node is None else NODE_COLUMNS
        series = _sums(conn, campaign.id, since, until, node, columns, by)
        per_node = _sums(conn, campaign.id, since, until, None, NODE_COLUMNS, "node")
    if node is not None and node not in nodes_of_workflow and node not in per_node:
        known = ", ".join(nodes_of_workflow) or "none"
        raise ReportProblem(f"node: {node!r} is not a node of campaign {campaign.name!r} (its nodes: {known})")
    starts = {_as_start(key): values for key, values in series.items()}
    periods = [Period(at, Counts(*starts[at]) if at in starts else Counts()) for at in _steps(since, until, step)]
    order = {name: index for index, name in enumerate(nodes_of_workflow)}
    nodes = {name: Counts(*values) for name, values in sorted(
        per_node.items(), key=lambda item: (item[0] == NO_NODE, order.get(item[0], len(order)), item[0]))}
    totals = sum((p.counts for p in periods), Counts())
    return Report(campaign.id, campaign.name, by, since, until, node, periods, totals, nodes)


# --- reading ------------------------------------------------------------------------------------------------------


def _sums(conn: Connection, campaign_id: str, since: datetime, until: datetime, node: str | None,
          columns: Sequence[str], group: str) -> dict[Any, tuple[int, ...]]:
    """Sums of ``columns`` by hour, day or node (``group``), from report_counts and, on PostgreSQL, the deltas not
    folded yet: in one statement, so that a fold between two reads can neither hide nor double a delta. Days are
    summed by the database: a year's report reads 365 rows, not 8 760."""
    postgres = is_postgres(conn)

    def part(table: Any) -> Any:
        key: Any = table.c.node_id if group == "node" else table.c.hour
        if group == "day":
            key = func.date_trunc("day", table.c.hour) if postgres else func.substr(table.c.hour, 1, 10)
        query = select(key.label("key"), *(table.c[c] for c in columns)).where(
            table.c.campaign_id == campaign_id, table.c.hour >= since, table.c.hour < until)
        return query.where(table.c.node_id == node) if node is not None else query

    source: Any = part(report_counts)
    if postgres:
        source = union_all(source, part(report_deltas))
    rows = source.subquery()
    query = select(rows.c.key, *(func.sum(rows.c[c]) for c in columns)).group_by(rows.c.key)
    return {row[0]: tuple(int(v or 0) for v in row[1:]) for row in conn.execute(query)}


def _as_start(key: Any) -> datetime:
    """A period's start as the database gives it: an hour (aware), a day's date text (SQLite) or midnight."""
    return utc(datetime.fromisoformat(key) if isinstance(key, str) else key)


def _activity(conn: Connection, campaign_id: str) -> tuple[datetime | None, datetime | None]:
    """The campaign's first and last hour with a count."""
    tables = [report_counts, report_deltas] if is_postgres(conn) else [report_counts]
    bounds = [conn.execute(select(func.min(t.c.hour), func.max(t.c.hour)).where(t.c.campaign_id == campaign_id)
                           ).one() for t in tables]
    firsts = [utc(b[0]) for b in bounds if b[0] is not None]
    lasts = [utc(b[1]) for b in bounds if b[1] is not None]
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)


def _workflow_nodes(conn: Connection, campaign_id: str) -> list[str]:
    """The node ids of the campaign's current version, in the order the definition gives them."""
    definition = conn.execute(select(campaign_versions.c.definition).join(
        campaigns, campaigns.c.current_version_id == campaign_versions.c.id).where(campaigns.c.id == campaign_id)
    ).scalar()
    nodes = ((definition or {}).get("workflow") or {}).get("nodes") or []
    return [str(n["id"]) for n in nodes if isinstance(n, Mapping) and "id" in n]


def _start(at: datetime, by: str) -> datetime:
    at = at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if by == "day" else at


def _ceil(at: datetime, by: str) -> datetime:
    start = _start(at, by)
    return start if start == at else start + BY[by]


def _steps(since: datetime, until: datetime, step: timedelta) -> Iterable[datetime]:
    at = since
    while at < until:
        yield at
        at += step


__all__ = ["BY", "METRICS", "Counts", "Period", "Report", "ReportProblem", "campaign_report"]
