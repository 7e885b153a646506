"""Simulation benchmark: a 100 000-target journey with delays of days, simulated on SQLite.

    python benchmarks/simulate.py [--targets 100000] [--database URL] [--no-flat] [--profile] [--json]

The journey waits days (a delay, a business-hours window, a two-day event timeout), splits by cohort and by a
condition, and renders a message for most targets through the file channel. Prints the wall seconds of the
simulation, the peak RSS and what the simulation added to it, and whether any row appeared outside the simulations'
own table and the audit trail (none may) or the outbox got a file; then PASS/FAIL against its targets: <= 30 s for
100 000 targets, no row in the real tables, memory flat. "Flat" is checked by simulating a tenth of the audience in a
process of its own: what the simulation adds to the process may grow by at most 25 MB from 10 000 to 100 000
targets (an 8-byte digest per distinct key is all it keeps per target).
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import json
import os
import platform
import pstats
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from campaignkit.core.audit import Actor
from campaignkit.core.campaigns import Campaigns
from campaignkit.core.campaigns.simulate import SimulationOptions
from campaignkit.core.campaigns.simulations import run_simulation
from campaignkit.core.db import reading
from campaignkit.core.db.migrate import upgrade
from campaignkit.core.db.schema import metadata
from campaignkit.core.definitions.loader import load_definition_text
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings

WORKFLOW = """
name: Simulation benchmark
workflow:
  nodes:
    - {id: entered, type: entered_campaign, next: settle}
    - {id: settle, type: time_delay, config: {duration: P3D}, next: office}
    - id: office
      type: time_window
      config: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00", timezone: Europe/Paris}
      next: split
    - {id: split, type: random_cohort, config: {cohorts: {a: 80, b: 20}}, edges: {a: welcome, b: check}}
    - {id: check, type: branch, config: {condition: "target.plan == 'pro'"}, edges: {"true": welcome, "false": left}}
    - id: welcome
      type: send_message
      config:
        channel: file
        to: "{{ target.email }}"
        subject: "Welcome, {{ target.name }}"
        text: "Hello {{ target.name }}, your plan is {{ target.plan }}."
        html: "<p>Hello <b>{{ target.name }}</b></p>"
      next: opened
    - id: opened
      type: wait_for_event
      config: {events: [opened], timeout: P2D}
      edges: {opened: left, timeout: reminder}
    - {id: reminder, type: time_delay, config: {duration: P7D}, next: left}
    - {id: left, type: left_campaign}
"""
LIMIT_SECONDS = 30
FLAT_MB = 25
KEPT_APART = ("simulations", "audit_history", "audit_chain")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def table_rows(runtime: Runtime) -> dict[str, int]:
    with reading(runtime.engine) as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in metadata.sorted_tables if table.name not in KEPT_APART}


def measure(targets: int, database: str | None, profile: bool) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="ck-simulate-bench-"))
    atexit.register(shutil.rmtree, folder, True)
    audience = folder / "audience.csv"
    with audience.open("w") as out:
        out.write("key,email,name,plan\n")
        for i in range(targets):
            out.write(f"u{i},u{i}@example.org,User {i},{'pro' if i % 3 else 'free'}\n")
    settings = Settings(var_dir=folder, database_url=database or f"sqlite:///{folder / 'bench.db'}",
                        audit_key=secrets.token_urlsafe(48))
    runtime = Runtime(settings)
    upgrade(runtime.engine)
    actor = Actor("benchmark")
    campaign_id = Campaigns(runtime).create(load_definition_text(WORKFLOW, "benchmark.yaml"), actor)
    before = table_rows(runtime)
    rss_before = peak_rss_mb()
    profiler = cProfile.Profile() if profile else None
    began, cpu_began = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    kept = run_simulation(runtime, campaign_id, actor, SimulationOptions(audience=audience))
    if profiler:
        profiler.disable()
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    after = table_rows(runtime)
    summary = kept["summary"]
    outbox = settings.var_dir / "outbox"
    figures = {
        "targets": summary["targets"],
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),  # this process's CPU time: what a shared, busy host does not inflate
        "targets_per_second": round(summary["targets"] / seconds),
        "simulated_days": summary["last_at"][:10] + " (from " + summary["started_at"][:10] + ")",
        "messages_rendered": summary["effects"].get("send_message", 0),
        "outcomes": summary["outcomes"],
        "peak_rss_mb": round(peak_rss_mb()),
        "rss_before_mb": round(rss_before),
        "simulation_rss_mb": round(peak_rss_mb() - rss_before, 1),
        "new_rows": {name: after[name] - before[name] for name in after if after[name] != before[name]},
        "outbox_files": len(list(outbox.iterdir())) if outbox.exists() else 0,
    }
    runtime.close()
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--database", help="SQLAlchemy URL; default: a fresh SQLite file in a temporary folder")
    parser.add_argument("--no-flat", action="store_true", help="skip the run at a tenth of the targets")
    parser.add_argument("--profile", action="store_true", help="profile the simulation with cProfile")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    small = None
    if not args.no_flat:  # first, alone in its own process, so that its peak is its own
        command = [sys.executable, __file__, "--targets", str(max(args.targets // 10, 1)), "--no-flat", "--json"]
        if args.database:
            command += ["--database", args.database]
        small = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    figures = measure(args.targets, args.database, args.profile)
    if small is not None:
        figures["simulation_rss_mb_at_a_tenth"] = small["simulation_rss_mb"]
    if args.json:
        print(json.dumps(figures))
        return
    scale = max(args.targets / 100_000, 1)
    print(f"command      {' '.join([Path(sys.executable).name, *sys.argv])}\n"
          f"machine      {platform.node()}: {platform.platform()}, {os.cpu_count()} CPU(s), "
          f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}\n"
          f"targets      {figures['targets']}\nsimulated    {figures['seconds']:.2f} s "
          f"({figures['targets_per_second']:,} targets/s, {figures['cpu_seconds']:.2f} s of CPU), "
          f"clock {figures['simulated_days']}\n"
          f"rendered     {figures['messages_rendered']} message(s), outcomes {figures['outcomes']}\n"
          f"peak RSS     {figures['peak_rss_mb']} MB; the simulation added {figures['simulation_rss_mb']} MB"
          + (f" ({small['simulation_rss_mb']} MB at {small['targets']} targets)" if small else "")
          + f"\nnew rows     {figures['new_rows'] or 'none'} outside {', '.join(KEPT_APART)}; "
          f"outbox files {figures['outbox_files']}")
    checks = [
        ("time", figures["seconds"] <= LIMIT_SECONDS * scale, f"<= {LIMIT_SECONDS * scale:g} s"),
        ("no row in the real tables", not figures["new_rows"] and not figures["outbox_files"], "none"),
    ]
    if small is not None:
        grown = figures["simulation_rss_mb"] - small["simulation_rss_mb"]
        checks.append(("memory flat", grown <= FLAT_MB, f"grows <= {FLAT_MB} MB from a tenth (grew {grown:.1f} MB)"))
    for name, ok, target in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name} {target}")
    if not all(ok for _, ok, _ in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
