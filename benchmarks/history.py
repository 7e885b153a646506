"""Access-review run history on a big campaign: one page and the per-status counts.

    python benchmarks/history.py [--runs 1000000]

Launches an access review of N user x application runs on SQLite (through the real launch path), gives the
runs a realistic spread of responses and results, then times history pages (default sort, filtered by status,
by approver, sorted by action time) and the summary counts. Targets: a page <= 20 ms and the counts
<= 100 ms at 1 000 000 runs. Then streams the CSV export (history_csv: `history --format csv`, the console's Export,
`GET /api/campaigns/{id}/history/export`) of every run and of filtered subsets, with its time, its size, the Python
heap's peak (tracemalloc, a second pass) and the process's peak RSS over it. Target: memory that does not grow with
the campaign (heap peak <= 16 MB).
"""

from __future__ import annotations

import argparse
import atexit
import secrets
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from campaignkit.core.audit import Actor
from campaignkit.core.campaigns import Campaigns
from campaignkit.core.db import writing
from campaignkit.core.db.migrate import upgrade
from campaignkit.core.definitions.loader import load_definition_text
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings
from campaignkit.plugins.access_review.history import HistoryQuery, history_csv, history_page, history_summary

DEFINITION = """
name: History benchmark
kind: access_review
audience: {source: csv, path: %s}
settings: {channel: "null"}
"""


def timed(call: Callable[[], Any], repeat: int = 20) -> tuple[float, float]:
    call()  # warm the page cache and SQLAlchemy's statement cache
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ck-history-bench-"))
    atexit.register(shutil.rmtree, folder, True)  # a million-row database is most of a gigabyte
    audience = folder / "audience.csv"
    with audience.open("w") as out:
        out.write("user,user_email,application,approver\n")
        for i in range(args.runs):
            out.write(f"user{i // 10},user{i // 10}@example.org,app{i % 10},manager{i % 5000}@example.org\n")
    runtime = Runtime(Settings(var_dir=folder, database_url=f"sqlite:///{folder / 'history.db'}",
                               audit_key=secrets.token_urlsafe(48), secret_key=secrets.token_urlsafe(48)))
    upgrade(runtime.engine)
    campaigns = Campaigns(runtime)
    campaign_id = campaigns.create(load_definition_text(DEFINITION % audience, "history.yaml",
                                                        kinds=runtime.kinds), Actor("bench"))
    began = time.perf_counter()
    campaigns.launch(campaign_id, Actor("bench"))
    print(f"launched {args.runs} runs in {time.perf_counter() - began:.1f} s")
    with writing(runtime.engine) as conn:
        # The facets the workflow would have set: a quarter pending, the rest answered or undeliverable.
        conn.execute(text("""
            UPDATE runs SET assignee = json_extract(target, '$.approver'),
              response = CASE id % 8 WHEN 0 THEN 'Message Delivery Failed' WHEN 1 THEN NULL WHEN 2 THEN NULL
                                     WHEN 3 THEN 'Revoked' ELSE 'Approved' END,
              response_at = CASE WHEN id % 8 >= 3 THEN datetime('2030-01-01', '+' || (id % 100000) || ' seconds') END,
              result = CASE WHEN id % 8 >= 3 THEN CASE WHEN id % 97 = 0 THEN 'Failure' ELSE 'Success' END END,
              status = CASE WHEN id % 8 IN (1, 2) THEN 'waiting' ELSE 'completed' END
        """))
        conn.execute(text("ANALYZE"))
    cases = {
        "page, default sort (user)": HistoryQuery(campaign_id, limit=50),
        "page, status = Pending Response": HistoryQuery(campaign_id, status="Pending Response", limit=50),
        "page, approver filter": HistoryQuery(campaign_id, approver="manager42@example.org", limit=50),
        "page, sorted by action time, desc": HistoryQuery(campaign_id, sort="time", descending=True, limit=50),
        "page 200 (offset 10 000)": HistoryQuery(campaign_id, limit=50, offset=10_000),
    }
    worst_page = 0.0
    for name, query in cases.items():
        median, worst = timed(lambda q=query: history_page(runtime, q))
        worst_page = max(worst_page, median)
        print(f"{name:38s} median {median:7.2f} ms  worst {worst:7.2f} ms")
    median, worst = timed(lambda: history_summary(runtime, campaign_id), repeat=10)
    print(f"{'counts per Response Status':38s} median {median:7.2f} ms  worst {worst:7.2f} ms")
    print(f"{'PASS' if worst_page <= 20 else 'FAIL'}  page <= 20 ms (slowest median {worst_page:.2f} ms)")
    print(f"{'PASS' if median <= 100 else 'FAIL'}  counts <= 100 ms (median {median:.2f} ms)")
    export_peak = 0
    for name, query in {
        "export, every run (user order)": HistoryQuery(campaign_id, limit=None),
        "export, every run by application, desc": HistoryQuery(campaign_id, sort="application", descending=True,
                                                               limit=None),
        "export, status = Revoked": HistoryQuery(campaign_id, status="Revoked", limit=None),
        "export, result = Failure": HistoryQuery(campaign_id, result="Failure", limit=None),
    }.items():
        rss_before = _reset_peak_rss()
        began = time.perf_counter()
        lines = size = 0
        for chunk in history_csv(runtime, query):
            lines += chunk.count("\n")
            size += len(chunk)
        seconds = time.perf_counter() - began
        rss = _peak_rss() - rss_before if rss_before else 0
        tracemalloc.start()
        for _ in history_csv(runtime, query):
            pass
        heap = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        export_peak = max(export_peak, heap)
        print(f"{name:38s} {lines - 1:8d} rows {size / 1e6:7.1f} MB in {seconds:6.2f} s; heap peak "
              f"{heap / 1e6:5.1f} MB, peak RSS +{rss / 1e3:5.1f} MB")
    print(f"{'PASS' if export_peak <= 16e6 else 'FAIL'}  export heap peak <= 16 MB ({export_peak / 1e6:.1f} MB)")


def _reset_peak_rss() -> int:
    """Linux: reset the process's peak RSS (VmHWM) and return the current RSS in kB; 0 elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kb("VmRSS")
    except OSError:
        return 0


def _peak_rss() -> int:
    return _status_kb("VmHWM")


def _status_kb(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


if __name__ == "__main__":
    main()
