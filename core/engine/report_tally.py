"""The counts of the step records a worker batch writes, added in the batch's transaction: the campaign reports'
(core/campaigns/reporting.py) and the visits by node and edge (path_counts, core/campaigns/counts.py); and, on
PostgreSQL, the fold of the report deltas every writer appends.

Only the worker writes step records, so counting them here keeps every one counted once and never late: a visit
entered when its record is first written, a final record (ok, failed) in the hour it finished, whether it was
written so or updated to it from waiting or retrying. In Python, from the records the batch already holds: a
database trigger per record made each step record 40-80 % dearer to write on SQLite; this costs the worker 1-2 % of
its time (benchmarks/engine.py), most of it truncating times to the hour, done once per distinct time. The visits by
node and edge were counted by triggers until migration 0012; on PostgreSQL those were most of the server's work for
a step record (a transition table and a join to runs for every statement).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, insert, text
from sqlalchemy.dialects import sqlite

from ..db import writing
from ..db.report_schema import REPORT_COUNTS
from ..db.schema import PATH_KEY, path_counts, report_counts, report_deltas
from .run_context import VISIT
from .statements import ClaimedRun, StepRecord

STEP_COUNTS = REPORT_COUNTS[:-1]  # all but events, which their trigger counts (migration 0009)
REPORT_KEY = (report_counts.c.campaign_id, report_counts.c.hour, report_counts.c.node_id)


class ReportTally:
    """Adds what a worker batch's step records count to report_counts (SQLite) or report_deltas (PostgreSQL), in the
    batch's transaction: one statement, built once, whatever the batch holds."""

    def __init__(self, postgres: bool) -> None:
        if postgres:  # delta rows, folded by housekeeping
            self.statement: Any = insert(report_deltas)
            self.paths: Any = insert(path_counts)
        else:
            upsert = sqlite.insert(report_counts)
            self.statement = upsert.on_conflict_do_update(
                index_elements=list(REPORT_KEY),
                set_={c: report_counts.c[c] + upsert.excluded[c] for c in STEP_COUNTS})
            paths = sqlite.insert(path_counts)
            self.paths = paths.on_conflict_do_update(
                index_elements=list(PATH_KEY), set_={"visits": path_counts.c.visits + paths.excluded.visits})

    def write(self, conn: Connection, claimed: Sequence[ClaimedRun], records: Sequence[StepRecord],
              rewritten: Mapping[int, tuple[str, Any]] | None = None) -> None:
        """``claimed``: the batch's claimed runs as the claim read them; ``records``: the step records it writes;
        ``rewritten``: rewritten_visits(claimed), if the caller has it already."""
        rows, paths = tally(claimed, records, rewritten)
        if rows:
            conn.execute(self.statement, rows)
        if paths:
            conn.execute(self.paths, paths)


def rewritten_visits(claimed: Sequence[ClaimedRun]) -> dict[int, tuple[str, Any]]:
    """The visit (node, visit number) whose record a batch's record rewrites, by run: the run's current visit at the
    claim, when the run was waiting there or had failed an attempt (its record says so). Any other record a batch
    writes is its visit's first (a live edit or a retry that moves a run to a node starts a new visit)."""
    return {row.id: (row.current_node, (row.context or {}).get(VISIT)) for row in claimed
            if row.current_node is not None and (row.status == "waiting" or row.attempt)}


def tally(claimed: Sequence[ClaimedRun], records: Sequence[StepRecord],
          rewritten: Mapping[int, tuple[str, Any]] | None = None,
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows a batch adds to the report counts, one per campaign, hour and node; and to path_counts, one per
    campaign, node and edge ('' for a visit that has not left its node: a record written waiting or retrying, whose
    rewrite later moves it to the edge it left by).

    A record rewrites the one of its visit as rewritten_visits says; any other record is its visit's first: a
    batch writes each visit once. A run whose current node was none takes its first step: it entered the campaign.
    A final record (ok, failed) counts in the hour it finished; without an edge it ended its run."""
    if rewritten is None:
        rewritten = rewritten_visits(claimed)
    campaign_of: dict[int, str] = {}
    starting: set[int] = set()  # runs taking their first step, until their first record is counted
    for row in claimed:
        campaign_of[row.id] = row.campaign_id
        if row.current_node is None:
            starting.add(row.id)
    counts: dict[tuple[str, datetime, str], list[int]] = {}
    visits: dict[tuple[str, str, str], int] = {}
    hours: dict[datetime, datetime] = {}  # a wave's records share their times: truncating each is most of the cost

    def counted(campaign_id: str, at: datetime, node: str) -> list[int]:
        hour = hours.get(at)
        if hour is None:
            hour = hours[at] = at.replace(minute=0, second=0, microsecond=0)
        found = counts.get((campaign_id, hour, node))
        if found is None:
            found = counts[campaign_id, hour, node] = [0] * 7
        return found

    # Unpacked whole: a named tuple's fields cost a lookup each, and a batch holds a record per step.
    for run_id, node, visit, _, _, started_at, _, finished_at, outcome, edge, detail in records:
        campaign_id = campaign_of[run_id]
        was = rewritten.get(run_id)
        row_counts = None
        if was is not None and was == (node, visit):  # the visit's record had not left the node
            if edge:
                visits[campaign_id, node, ""] = visits.get((campaign_id, node, ""), 0) - 1
                key = (campaign_id, node, edge)
                visits[key] = visits.get(key, 0) + 1
        else:
            key = (campaign_id, node, edge or "")
            visits[key] = visits.get(key, 0) + 1
            row_counts = counted(campaign_id, started_at, node)
            row_counts[0] += 1
            if run_id in starting:  # its first record: a run taking its first step cannot rewrite one
                starting.discard(run_id)
                row_counts[4] += 1
        if outcome == "ok" or outcome == "failed":
            # A final record has its finish time; most finish in the hour they started.
            at = cast(datetime, finished_at)
            if row_counts is None or hours[started_at] != hours.get(at):
                row_counts = counted(campaign_id, at, node)
            ended = edge is None
            if outcome == "ok":
                row_counts[1] += 1
                if detail and ("channel" in detail or "message_id" in detail):
                    row_counts[3] += 1  # a sending step names the channel or the message id it sent
                if ended:
                    row_counts[5] += 1
            else:
                row_counts[2] += 1
                if ended:
                    row_counts[6] += 1
    return ([{"campaign_id": key[0], "hour": key[1], "node_id": key[2], **dict(zip(STEP_COUNTS, values, strict=True))}
             for key, values in counts.items()],
            [{"campaign_id": key[0], "node_id": key[1], "edge": key[2], "visits": n} for key, n in visits.items() if n])


def fold(engine: Engine) -> None:
    """PostgreSQL: move the deltas into report_counts, one row per key. Atomic: a delta appended meanwhile is not in
    the DELETE's snapshot and stays for the next fold; a report reads both tables in one statement."""
    if engine.dialect.name != "postgresql":
        return
    key = ", ".join(c.name for c in REPORT_KEY)
    sums = ", ".join(f"sum({c})" for c in REPORT_COUNTS)
    added = ", ".join(f"{c} = report_counts.{c} + excluded.{c}" for c in REPORT_COUNTS)
    with writing(engine) as conn:
        conn.execute(text(f"WITH moved AS (DELETE FROM report_deltas RETURNING *) "
                          f"INSERT INTO report_counts ({key}, {', '.join(REPORT_COUNTS)}) "
                          f"SELECT {key}, {sums} FROM moved GROUP BY {key} "
                          f"ON CONFLICT ({key}) DO UPDATE SET {added}"))
