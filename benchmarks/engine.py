"""Engine benchmark: N targets through a 6-step workflow with the null channel on SQLite.

    python benchmarks/engine.py [--targets 100000] [--batch-size 500] [--threads 8] [--profile] [--json]

Prints targets, launch seconds, steps executed, wall seconds of the work, steps/s and peak RSS, with PASS/FAIL
against its targets on a 2-core machine: >= 25 000 steps/s, peak RSS <= 300 MB at 100 000 targets, and the
launch of 100 000 targets in <= 5 s.
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import json
import pstats
import resource
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from campaignkit.core.audit import Actor
from campaignkit.core.campaigns import Campaigns
from campaignkit.core.db import reading
from campaignkit.core.db.migrate import upgrade
from campaignkit.core.db.schema import runs, step_records
from campaignkit.core.definitions.loader import load_definition_text
from campaignkit.core.engine.worker import Worker
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings

# Six steps, one of them a side effect on the thread pool (the send) and one an event to plugins.
WORKFLOW = """
name: Engine benchmark
workflow:
  nodes:
    - {id: entered, type: entered_campaign, next: send}
    - id: send
      type: send_message
      config:
        {channel: "null", to: "{{ target.email }}", subject: "Hello {{ target.name }}", text: "Plan {{ target.plan }}"}
      next: split
    - {id: split, type: random_cohort, config: {cohorts: {a: 50, b: 50}}, edges: {a: check, b: check}}
    - {id: check, type: branch, config: {condition: "target.plan == 'pro'"}, edges: {"true": notify, "false": notify}}
    - {id: notify, type: send_event, config: {event: benchmarked}, next: left}
    - {id: left, type: left_campaign}
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_calibration() -> float:
    """Seconds for a fixed pure-Python loop: shared hosts vary from day to day, and figures only compare at par."""
    began = time.perf_counter()
    total = 0
    for i in range(20_000_000):
        total += i
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--database", help="SQLAlchemy URL; default: a fresh SQLite file in a temporary folder")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--profile", action="store_true", help="profile the work phase with cProfile")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ck-engine-bench-"))
    atexit.register(shutil.rmtree, folder, True)  # a million-row database is most of a gigabyte
    audience = folder / "audience.csv"
    with audience.open("w") as out:
        out.write("key,email,name,plan\n")
        for i in range(args.targets):
            out.write(f"u{i},u{i}@example.org,User {i},{'pro' if i % 3 else 'free'}\n")
    settings = Settings(var_dir=folder, database_url=args.database or f"sqlite:///{folder / 'bench.db'}",
                        worker={"batch_size": args.batch_size, "threads": args.threads},
                        audit_key=secrets.token_urlsafe(48))
    runtime = Runtime(settings)
    upgrade(runtime.engine)
    campaigns = Campaigns(runtime)
    actor = Actor("benchmark")
    campaign_id = campaigns.create(load_definition_text(WORKFLOW, "benchmark.yaml"), actor)
    rss_before = peak_rss_mb()

    began = time.perf_counter()
    launched = campaigns.launch(campaign_id, actor, audience=audience).target_count
    launch_seconds = time.perf_counter() - began

    worker = Worker(runtime)
    profiler = cProfile.Profile() if args.profile else None
    began = time.perf_counter()
    if profiler:
        profiler.enable()
    worker.run_until_idle()
    if profiler:
        profiler.disable()
    work_seconds = time.perf_counter() - began
    worker.close()

    with reading(runtime.engine) as conn:
        steps = conn.execute(select(func.count()).select_from(step_records)).scalar_one()
        unfinished = conn.execute(select(func.count()).select_from(runs).where(runs.c.status != "completed")
                                  ).scalar_one()
    figures = {
        "targets": launched,
        "launch_seconds": round(launch_seconds, 2),
        "steps": steps,
        "work_seconds": round(work_seconds, 2),
        "steps_per_second": round(steps / work_seconds),
        "peak_rss_mb": round(peak_rss_mb()),
        "rss_before_launch_mb": round(rss_before),
        "unfinished_runs": unfinished,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "cpu_calibration_seconds": round(cpu_calibration(), 2),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        scale = args.targets / 100_000
        checks = [
            ("steps/s", figures["steps_per_second"] >= 25_000, ">= 25 000"),
            ("peak RSS", figures["peak_rss_mb"] <= 300, "<= 300 MB"),
            ("launch", launch_seconds <= 5 * max(scale, 1), f"<= {5 * max(scale, 1):g} s"),
        ]
        print(f"targets      {launched}\nlaunch       {launch_seconds:.2f} s\nsteps        {steps}\n"
              f"work         {work_seconds:.2f} s\nsteps/s      {figures['steps_per_second']:,}\n"
              f"peak RSS     {figures['peak_rss_mb']} MB (before launch {figures['rss_before_launch_mb']} MB)\n"
              f"calibration  {figures['cpu_calibration_seconds']:.2f} s (a fixed pure-Python loop: compare hosts)")
        for name, ok, target in checks:
            print(f"{'PASS' if ok else 'FAIL'}  {name} {target}")
    if unfinished:
        print(f"{unfinished} run(s) did not complete", file=sys.stderr)
        sys.exit(1)
    if profiler:
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
