"""Campaign reporting over a big ledger: a campaign's daily counts at 10 000 000 step records, on SQLite.

    python benchmarks/reporting.py [--records 10000000] [--nodes 10] [--days 90] [--repeat 9] [--no-check]

Builds a ledger quickly with the driver's own cursor (executemany, large transactions): two campaigns of a
`--nodes`-node journey, 95 % of the step records in the measured one, whose runs enter over 60 days and take a step
every few hours (ok; a failure edge now and then; a run failing at its last node now and then; the sending nodes
name their channel), and one event per ten step records, inserted through its trigger. The report counts are added
as the worker adds them: each chunk of records through ReportTally (core/engine/report_tally.py), the worker's own
code. Then it times, median of `--repeat` after a warm-up: the campaign's daily counts over all its days (`campaign
report NAME`, the API's default), the console's view (the last 30 days), one node's daily counts, and the last 7 days
hour by hour. Target: <= 200 ms for the daily counts at 10 000 000 step records.

Unless --no-check, it then counts the same straight from the ledger (per node and day: visits started, finished
ok, failed, sent) with one GROUP BY over the step records, times that (what a report would cost without its counts)
and checks that both agree.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from history import timed  # benchmarks/history.py: median and worst
from host import machine  # benchmarks/host.py
from sqlalchemy import insert, text

from campaignkit.core.campaigns.reporting import campaign_report
from campaignkit.core.db import writing
from campaignkit.core.db.migrate import upgrade
from campaignkit.core.db.schema import campaign_versions, campaigns, launches
from campaignkit.core.engine.report_tally import ReportTally
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings

# The first runs enter this long before now, so that the campaign's days end about today, as a live one's do.
START = (datetime.now(UTC) - timedelta(days=95)).replace(hour=0, minute=0, second=0, microsecond=0)
ENTRY_DAYS = 60
CHUNK = 200_000  # step records per transaction
SENDING = {2, 6}  # the nodes that send a message
STORED = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a time on SQLite


class Claimed(NamedTuple):
    """A run as the worker's claim reads it (what ReportTally looks at)."""

    id: int
    campaign_id: str
    current_node: str | None
    status: str
    attempt: int


def create_campaigns(runtime: Runtime, nodes: int) -> tuple[str, str]:
    workflow = {"nodes": [{"id": f"n{i}", "type": "branch" if i else "entered_campaign"} for i in range(nodes)]}
    ids = ("bench-big-0000-0000-000000000000", "bench-small-000-0000-000000000000")
    with writing(runtime.engine) as conn:
        for number, (campaign_id, name) in enumerate(zip(ids, ("Big journey", "Small journey"), strict=True), 1):
            conn.execute(insert(campaigns).values(id=campaign_id, name=name, folder="", kind="journey",
                                                  state="in_progress", current_version_id=number, created_at=START,
                                                  updated_at=START))
            conn.execute(insert(campaign_versions).values(id=number, campaign_id=campaign_id, major=1, minor=0,
                                                          definition={"name": name, "workflow": workflow},
                                                          created_at=START))
            conn.execute(insert(launches).values(id=number, campaign_id=campaign_id, cycle_at=START,
                                                 version_id=number, status="launched", created_at=START))
    return ids


def build(runtime: Runtime, database: Path, records: int, nodes: int, days: int) -> tuple[str, dict[str, int]]:
    """The ledger, its runs and events, and the counts the worker would have kept; returns the big campaign."""
    big, small = create_campaigns(runtime, nodes)
    runs_total = records // nodes
    split = int(runs_total * 0.95)
    rng = random.Random(20301)
    tally = ReportTally(postgres=False)
    driver = sqlite3.connect(database, isolation_level=None)
    driver.execute("PRAGMA synchronous=OFF")
    driver.execute("PRAGMA foreign_keys=OFF")  # the rows are consistent as made; checking each costs a fifth
    # Times in whole minutes, each one object with its stored text made once: as a worker's records share the times
    # of their wave (and the generator spends its time on the ledger, not on formatting dates).
    minutes: dict[int, tuple[datetime, str]] = {}

    def minute(number: int) -> tuple[datetime, str]:
        found = minutes.get(number)
        if found is None:
            at = START + timedelta(minutes=number)
            found = minutes[number] = (at, at.strftime(STORED))
        return found

    step_minutes = (days - ENTRY_DAYS) * 1440 / nodes  # the last steps land up to `days` days after the start
    names = [f"n{node}" for node in range(nodes)]
    sent_detail = '{"channel": "null", "message_id": "<bench>"}'
    sent, refused = json.loads(sent_detail), {"error": "refused"}
    made = {"runs": 0, "steps": 0, "events": 0}
    began = time.perf_counter()
    per_chunk = CHUNK // nodes
    for first in range(1, runs_total + 1, per_chunk):
        ids = range(first, min(first + per_chunk, runs_total + 1))
        run_rows, step_rows, event_rows, claimed, records_of_chunk = [], [], [], [], []
        for run_id in ids:
            campaign_id, index, count = (big, run_id, split) if run_id <= split else (small, run_id - split,
                                                                                     runs_total - split)
            at = int(ENTRY_DAYS * 1440 * index / count + rng.random() * 60)
            entered = minute(at)[1]
            fails_at_end = rng.random() < 0.005
            run_rows.append((run_id, campaign_id, 1 if campaign_id == big else 2, 1 if campaign_id == big else 2,
                             f"t{run_id}", "{}", "failed" if fails_at_end else "completed", names[-1], "{}",
                             0, 0, 0, entered, entered))
            claimed.append(Claimed(run_id, campaign_id, None, "pending", 0))
            for node, name in enumerate(names):
                last = node == nodes - 1
                failed = (last and fails_at_end) or (node == 3 and rng.random() < 0.01)
                (start, start_text), (end, end_text) = minute(at), minute(at + 1)
                edge = None if last else ("failure" if failed else "next")
                detail = refused if failed else sent if node in SENDING else None
                outcome = "failed" if failed else "ok"
                records_of_chunk.append({"run_id": run_id, "node_id": name, "started_at": start, "finished_at": end,
                                         "outcome": outcome, "edge": edge, "detail": detail})
                step_rows.append((run_id, name, 1, "branch", 1, start_text, end_text, outcome, edge,
                                  None if detail is None else sent_detail if detail is sent else '{"error": "refused"}',
                                  f"ck:{run_id}:{name}:1"))
                at += 1 + int(step_minutes * (0.5 + rng.random()))
            event_rows.append((run_id, "clicked", "{}", "bench", minute(at - int(rng.random() * 4000))[1]))
        driver.execute("BEGIN")
        driver.executemany("INSERT INTO runs (id, campaign_id, launch_id, version_id, target_key, target, status, "
                           "current_node, context, lease_token, attempt, assignment, created_at, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run_rows)
        driver.executemany("INSERT INTO step_records (run_id, node_id, visit, step_type, attempt, started_at, "
                           "finished_at, outcome, edge, detail, idempotency_key) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", step_rows)
        driver.executemany("INSERT INTO events (run_id, name, payload, source, created_at) VALUES (?, ?, ?, ?, ?)",
                           event_rows)
        driver.execute("COMMIT")
        with writing(runtime.engine) as conn:  # what the worker adds in its batch transaction
            tally.write(conn, claimed, records_of_chunk)
        made["runs"] += len(run_rows)
        made["steps"] += len(step_rows)
        made["events"] += len(event_rows)
        done = made["steps"] / max(records, 1)
        print(f"\r  building: {made['steps']:,} step records ({done:.0%}), {time.perf_counter() - began:.0f} s",
              end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    driver.execute("ANALYZE")
    driver.close()
    made["seconds"] = round(time.perf_counter() - began)
    return big, made


def from_the_ledger(database: Path, campaign_id: str) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    """Per day and node: visits started, finished ok, failed and sent, with GROUP BYs over the step records."""
    driver = sqlite3.connect(database)
    found: dict[tuple[str, str], list[int]] = {}
    starts = ("SELECT substr(s.started_at, 1, 10), s.node_id, count(*), 0, 0, 0 FROM step_records s "
              "JOIN runs r ON r.id = s.run_id WHERE r.campaign_id = ? GROUP BY 1, 2")
    ends = ("SELECT substr(s.finished_at, 1, 10), s.node_id, 0, sum(s.outcome = 'ok'), sum(s.outcome = 'failed'), "
            "sum(s.outcome = 'ok' AND (json_type(s.detail, '$.channel') IS NOT NULL "
            "OR json_type(s.detail, '$.message_id') IS NOT NULL)) FROM step_records s JOIN runs r ON r.id = s.run_id "
            "WHERE r.campaign_id = ? AND s.outcome IN ('ok', 'failed') GROUP BY 1, 2")
    for query in (starts, ends):
        for day, node, *values in driver.execute(query, (campaign_id,)):
            totals = found.setdefault((day, node), [0, 0, 0, 0])
            for i, value in enumerate(values):
                totals[i] += int(value or 0)
    driver.close()
    return {key: (v[0], v[1], v[2], v[3]) for key, v in found.items() if any(v)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--days", type=int, default=90, help="from the first entry to the last step")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--no-check", action="store_true", help="skip counting the ledger itself")
    args = parser.parse_args()
    if args.days <= ENTRY_DAYS:
        parser.error(f"--days must be more than the {ENTRY_DAYS} days runs enter over")

    folder = Path(tempfile.mkdtemp(prefix="ck-reporting-bench-"))
    atexit.register(shutil.rmtree, folder, True)  # ten million step records are a few gigabytes
    database = folder / "bench.db"
    print(f"command: python benchmarks/reporting.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {machine('sqlalchemy')}")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
    settings = Settings(var_dir=folder, database_url=f"sqlite:///{database}", audit_key=secrets.token_urlsafe(48))
    runtime = Runtime(settings)
    upgrade(runtime.engine)
    big, made = build(runtime, database, args.records, args.nodes, args.days)
    with runtime.engine.connect() as conn:
        kept = conn.execute(text("SELECT count(*) FROM report_counts WHERE campaign_id = :c"), {"c": big}).scalar()
    print(f"ledger: {made['steps']:,} step records, {made['runs']:,} runs, {made['events']:,} events, built in "
          f"{made['seconds']} s; the measured campaign has {int(made['steps'] * 0.95):,} of the step records and "
          f"{kept:,} count rows (hours x nodes); database {database.stat().st_size / 2**30:.1f} GiB")

    daily = campaign_report(runtime, big)
    checks = []
    rows = [
        ("daily counts, every day of the campaign (campaign report NAME)", lambda: campaign_report(runtime, big)),
        ("the console's chart (the last 30 days)", lambda: campaign_report(runtime, big, last=30)),
        ("one node's daily counts (--node n5)", lambda: campaign_report(runtime, big, node="n5")),
        ("hour by hour, the last 7 days (--by hour)", lambda: campaign_report(
            runtime, big, by="hour", since=daily.until - timedelta(days=7))),
    ]
    print(f"\nreport of the measured campaign: {len(daily.periods)} days, totals {daily.totals.as_dict()}")
    for name, call in rows:
        median, worst = timed(call, args.repeat)
        print(f"  {name}: median {median:.1f} ms, worst {worst:.1f} ms (of {args.repeat})")
        if name.startswith("daily"):
            checks.append((median <= 200, f"daily counts <= 200 ms at {made['steps']:,} step records "
                                          f"(median {median:.1f} ms)"))

    if not args.no_check:
        began = time.perf_counter()
        ledger = from_the_ledger(database, big)
        seconds = time.perf_counter() - began
        print(f"\nthe same per node and day straight from the ledger: {seconds:.1f} s (two GROUP BYs over the step "
              "records; what a report would cost without its counts)")
        reported: dict[tuple[str, str], tuple[int, int, int, int]] = {}
        for node in daily.nodes:
            for period in campaign_report(runtime, big, node=node).periods:
                c = period.counts
                if c.entered or c.completed or c.failed or c.sent:
                    reported[period.start.date().isoformat(), node] = (c.entered, c.completed, c.failed, c.sent)
        checks.append((reported == ledger, f"the report's counts are the ledger's ({len(ledger):,} node-days)"))
    print()
    for ok, what in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    if not all(ok for ok, _ in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
