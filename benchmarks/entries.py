"""Entry rules and entries benchmark: what the rules cost a launch, how many entries a campaign takes per second, and
what a recipient's own time zone costs a step.

    python benchmarks/entries.py [--targets 100000] [--entries 2000] [--threads 4] [--database URL] [--json]

1. Launches of --targets targets into three campaigns: without entry rules, with `again: after_leaving`, and with
   `again: {after: PT1S}`: the first launch of each (no earlier run: nothing to read), then a relaunch once every
   run has finished, so that every target gets a run again. after_leaving reads the runs in the journey once (none
   here); {after: ...} looks up each chunk's earlier runs (100 000 here), the dearest case.
2. Entries through enter_target, the function behind POST /api/campaigns/{id}/entries and `campaign enter`: --entries
   new targets one after the other, the same targets again (each refused: still in the journey), then --threads
   threads, each with its own runtime (as processes would be), entering new targets into the same campaign.
3. The zone of 100 000 steps: run_zone (the target's attribute to a zone, cached) and next_local_time.

Prints the command, the machine (cores, load average) and the figures. A fresh SQLite file by default; give
--database for PostgreSQL (an empty database: the benchmark creates its tables).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from sqlalchemy import update

from campaignkit.core.audit import Actor
from campaignkit.core.campaigns import Campaigns
from campaignkit.core.campaigns.entries import enter_target
from campaignkit.core.db import writing
from campaignkit.core.db.migrate import upgrade
from campaignkit.core.db.schema import campaigns as campaigns_table
from campaignkit.core.db.schema import runs
from campaignkit.core.definitions.loader import load_definition_text
from campaignkit.core.engine.steps.local_time import next_local_time, run_zone
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings

JOURNEY = """
name: {name}
{entry}
audience: {{key: email}}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: wait}}
    - {{id: wait, type: wait_for_event, config: {{events: [clicked]}}, next: done}}
    - {{id: done, type: left_campaign}}
"""
ZONES = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "", "Mars/Base", "europe/london"]


def runtime_for(url: str, folder: Path, key: str) -> Runtime:
    return Runtime(Settings(var_dir=folder, database_url=url, audit_key=key))


def timed(action: Any) -> tuple[Any, float]:
    began = time.perf_counter()
    result = action()
    return result, time.perf_counter() - began


def finish_all(runtime: Runtime, campaign_id: str) -> None:
    """Every run of the campaign completed at once (the set-up of a relaunch, not measured)."""
    with writing(runtime.engine) as conn:
        conn.execute(update(runs).where(runs.c.campaign_id == campaign_id).values(status="completed", due_at=None))
        conn.execute(update(campaigns_table).where(campaigns_table.c.id == campaign_id).values(state="completed"))


def launches(runtime: Runtime, audience: Path, targets: int) -> dict[str, float]:
    campaigns, actor, figures = Campaigns(runtime), Actor("benchmark"), {}
    for label, entry in (("no_rules", ""), ("after_leaving", "entry: {again: after_leaving}"),
                         ("after_period", "entry: {again: {after: PT1S}}")):
        campaign_id = campaigns.create(load_definition_text(JOURNEY.format(name=f"Launch {label}", entry=entry),
                                                            "bench.yaml"), actor)
        first, seconds = timed(lambda: campaigns.launch(campaign_id, actor, audience=audience))  # noqa: B023
        assert first.target_count == targets
        figures[f"launch_{label}_first_s"] = round(seconds, 2)
        finish_all(runtime, campaign_id)
        time.sleep(1)  # past {after: PT1S}
        again, seconds = timed(lambda: campaigns.launch(campaign_id, actor, audience=audience))  # noqa: B023
        assert again.target_count == targets and not again.skipped
        figures[f"launch_{label}_relaunch_s"] = round(seconds, 2)
    return figures


def entries(runtime: Runtime, url: str, folder: Path, key: str, count: int, threads: int) -> dict[str, float]:
    campaigns, actor = Campaigns(runtime), Actor("benchmark")
    campaign_id = campaigns.create(load_definition_text(
        JOURNEY.format(name="Entries", entry="entry: {again: after_leaving, trigger: events}"), "bench.yaml"), actor)
    campaigns.launch(campaign_id, actor)
    keys = [f"e{i}@example.org" for i in range(count)]
    _, started = timed(lambda: [enter_target(runtime, campaign_id, k, {"plan": "trial"}, actor=actor) for k in keys])
    refused, seconds = timed(lambda: [enter_target(runtime, campaign_id, k, {}, actor=actor) for k in keys])
    assert not any(outcome.started for outcome in refused)
    per_thread = count // threads
    others = [runtime_for(url, folder, key) for _ in range(threads)]

    def enter(index: int) -> None:
        for n in range(per_thread):
            enter_target(others[index], campaign_id, f"t{index}-{n}@example.org", {}, actor=actor)

    workers = [threading.Thread(target=enter, args=(i,)) for i in range(threads)]
    began = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    together = time.perf_counter() - began
    for other in others:
        other.close()
    return {"entries_started_per_s": round(count / started), "entries_refused_per_s": round(count / seconds),
            f"entries_{threads}_threads_per_s": round(per_thread * threads / together),
            "entry_ms": round(started / count * 1000, 2)}


def zones(steps: int = 100_000) -> dict[str, float]:
    targets = [{"tz": ZONES[i % len(ZONES)]} for i in range(steps)]
    chosen, seconds = timed(lambda: [run_zone(t, "tz", "UTC") for t in targets])
    now = datetime(2030, 3, 30, 12, 0, tzinfo=UTC)
    _, local = timed(lambda: [next_local_time(now, clock_time(9, 0), c.zone) for c in chosen])
    return {"run_zone_us": round(seconds / steps * 1e6, 2), "next_local_time_us": round(local / steps * 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--database", help="SQLAlchemy URL of an empty database; default: a fresh SQLite file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ck-entries-bench-"))
    atexit.register(shutil.rmtree, folder, True)
    audience = folder / "audience.csv"
    with audience.open("w") as out:
        out.write("email,plan\n")
        out.writelines(f"u{i}@example.org,{'pro' if i % 3 else 'free'}\n" for i in range(args.targets))
    url = args.database or f"sqlite:///{folder / 'bench.db'}"
    key = secrets.token_urlsafe(48)
    runtime = runtime_for(url, folder, key)
    upgrade(runtime.engine)
    figures: dict[str, Any] = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
                               "database": runtime.engine.dialect.name, "cores": os.cpu_count(),
                               "load_average_before": [round(x, 2) for x in os.getloadavg()],
                               "machine": platform.platform()}
    figures.update(launches(runtime, audience, args.targets))
    figures.update(entries(runtime, url, folder, key, args.entries, args.threads))
    figures.update(zones())
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    runtime.close()
    if args.json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        print(f"{name:32} {value}")


if __name__ == "__main__":
    main()
