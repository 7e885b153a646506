"""The counts the database keeps (run_counts, path_counts; migration 0005): runs by cycle, status and node, and
visits by node and the edge they left through. A page reads a few rows here instead of counting a million runs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, case, func, insert, select, text
from sqlalchemy.dialects import sqlite

from ..db import writing
from ..db.schema import LIVE_STATUSES, RUN_KEY, path_counts, run_counts


@dataclass
class NodeCounts:
    """One node of a campaign's workflow: runs that entered it, are at it now by status, left it by each edge."""

    entered: int = 0
    at: dict[str, int] = field(default_factory=dict)  # live and failed runs whose current node this is, by status
    left: dict[str, int] = field(default_factory=dict)  # by edge

    @property
    def waiting(self) -> int:
        return sum(n for status, n in self.at.items() if status in LIVE_STATUSES)


def add_launched(conn: Connection, campaign_id: str, launch_id: int, launched: int) -> None:
    """Count the runs a launch inserted (pending, at no node yet), in the launch's transaction. The launch is the one
    code that inserts runs, so it counts them itself: a trigger per inserted row would double a launch's time."""
    if not launched:
        return
    row = {"campaign_id": campaign_id, "launch_id": launch_id, "status": "pending", "node": "", "runs": launched}
    if conn.dialect.name == "postgresql":  # a delta row, as the triggers append
        conn.execute(insert(run_counts).values(row))
        return
    added = sqlite.insert(run_counts).values(row)
    conn.execute(added.on_conflict_do_update(index_elements=list(RUN_KEY),
                                             set_={"runs": run_counts.c.runs + added.excluded.runs}))


def by_status(conn: Connection, campaign_id: str) -> dict[str, int]:
    return _sums(conn, select(run_counts.c.status, func.sum(run_counts.c.runs))
                 .where(run_counts.c.campaign_id == campaign_id).group_by(run_counts.c.status))


def by_cycle(conn: Connection, campaign_id: str) -> dict[int, dict[str, int]]:
    """Each cycle's (launch id's) runs by status."""
    cycles: dict[int, dict[str, int]] = defaultdict(dict)
    rows = conn.execute(select(run_counts.c.launch_id, run_counts.c.status, func.sum(run_counts.c.runs))
                        .where(run_counts.c.campaign_id == campaign_id)
                        .group_by(run_counts.c.launch_id, run_counts.c.status))
    for launch_id, status, count in rows:
        if count:
            cycles[launch_id][status] = int(count)
    return dict(cycles)


def by_node(conn: Connection, campaign_id: str) -> dict[str, NodeCounts]:
    """Every node any run of the campaign reached, with what entered it, is at it and left it."""
    nodes: dict[str, NodeCounts] = defaultdict(NodeCounts)
    visits = conn.execute(select(path_counts.c.node_id, path_counts.c.edge, func.sum(path_counts.c.visits))
                          .where(path_counts.c.campaign_id == campaign_id)
                          .group_by(path_counts.c.node_id, path_counts.c.edge))
    for node, edge, count in visits:
        if count:
            nodes[node].entered += int(count)
            if edge:
                nodes[node].left[edge] = int(count)
    at = conn.execute(select(run_counts.c.node, run_counts.c.status, func.sum(run_counts.c.runs))
                      .where(run_counts.c.campaign_id == campaign_id, run_counts.c.node != "",
                             run_counts.c.status.in_((*LIVE_STATUSES, "failed")))
                      .group_by(run_counts.c.node, run_counts.c.status))
    for node, status, count in at:
        if count:
            nodes[node].at[status] = int(count)
    return dict(nodes)


def totals(conn: Connection, campaign_ids: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """Every campaign's runs, or these campaigns': (all, live)."""
    live = case((run_counts.c.status.in_(LIVE_STATUSES), run_counts.c.runs), else_=0)
    query = select(run_counts.c.campaign_id, func.sum(run_counts.c.runs), func.sum(live))
    if campaign_ids is not None:
        query = query.where(run_counts.c.campaign_id.in_(campaign_ids))
    rows = conn.execute(query.group_by(run_counts.c.campaign_id))
    return {campaign_id: (int(total or 0), int(alive or 0)) for campaign_id, total, alive in rows}


def fold(engine: Engine) -> None:
    """PostgreSQL: fold the delta rows the triggers appended into one row per key (SQLite keeps one already).
    Atomic per table; deltas appended meanwhile are not in the DELETE's snapshot and stay for the next fold."""
    if engine.dialect.name != "postgresql":
        return
    with writing(engine) as conn:
        for table, key, value in (("run_counts", "campaign_id, launch_id, status, node", "runs"),
                                  ("path_counts", "campaign_id, node_id, edge", "visits")):
            conn.execute(text(f"WITH gone AS (DELETE FROM {table} RETURNING *) "
                              f"INSERT INTO {table} ({key}, {value}) SELECT {key}, sum({value}) FROM gone "
                              f"GROUP BY {key} HAVING sum({value}) <> 0"))


def _sums(conn: Connection, query: Any) -> dict[str, int]:
    return {key: int(count) for key, count in conn.execute(query) if count}
