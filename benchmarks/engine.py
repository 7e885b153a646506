"""Engine benchmark: N targets through a 6-step workflow with the null channel, on SQLite or PostgreSQL.

    python benchmarks/engine.py [--targets 100000] [--batch-size 500] [--threads 8] [--profile] [--json]
    python benchmarks/engine.py --database URL --workers N [--no-ceiling]

Prints targets, launch seconds, steps executed, wall seconds of the work, steps/s, the CPU the workers (and, on a
PostgreSQL server on this host, the server) spent per step, the SQL statements and commits per step, and peak RSS.
Then its ceiling: the engine's own SQL with its values already prepared, captured from an untimed engine run on a
copy of the launched database and replayed through the DB driver (benchmarks/engine_ceiling.py). The engine's steps/s
as a fraction of it says how much of the time is the engine's Python. A shared host's speed drifts by a third from
one minute to the next, so the work is measured in rounds (``--rounds``, 3 by default), each an engine run and a
replay on their own copies of the launched database, timed over the same seconds: after each of the engine's batches
the replay runs up to the same share of its steps, each on its own clock (with ``--workers``, whose work is in other
processes, the replay runs right after). A round's fraction compares two runs the same drift met, and the median
round's is the figure (its steps/s, its ceiling). PASS/FAIL against its targets on a
2-core machine: fraction >= 0.35, peak RSS <= 300 MB at 100 000 targets, launch of 100 000 in <= 5 s.

By default the work runs in the benchmark's own process. ``--workers N`` runs N separate worker processes (spawned,
each Worker(Runtime(settings)).run_until_idle(), started together, timed until all are done). ``--database URL`` names
a PostgreSQL server: each run creates its databases there and drops them after. Measure with durability on, as
production runs, on a cluster of the server's defaults (the test cluster runs with fsync off):

    eval "$(scripts/pg-bench-cluster.sh start)"
    .venv/bin/python benchmarks/engine.py --database "$CAMPAIGNKIT_BENCH_PG_URL" --workers 1
    .venv/bin/python benchmarks/engine.py --database "$CAMPAIGNKIT_BENCH_PG_URL" --workers 2
    # the server on core 1 (the postmaster and its children; new backends inherit it), the workers on core 0:
    pm=$(head -1 /tmp/campaignkit-pg-bench-*/data/postmaster.pid)
    for pid in $pm $(pgrep -P $pm); do taskset -p -c 1 $pid; done
    taskset -c 0 .venv/bin/python benchmarks/engine.py --database "$CAMPAIGNKIT_BENCH_PG_URL" --workers 2
    scripts/pg-bench-cluster.sh stop
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import json
import multiprocessing
import os
import pstats
import resource
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_databases import Databases  # benchmarks/bench_databases.py
from engine_ceiling import Capture, Replay  # benchmarks/engine_ceiling.py
from host import machine  # benchmarks/host.py
from pg_cpu import postmaster_of, server_seconds  # benchmarks/pg_cpu.py
from sqlalchemy import Engine, func, select, text

from campaignkit.core.audit import Actor
from campaignkit.core.campaigns import Campaigns
from campaignkit.core.db import make_engine, reading
from campaignkit.core.db.migrate import upgrade
from campaignkit.core.db.schema import runs, step_records
from campaignkit.core.definitions.loader import load_definition_text
from campaignkit.core.engine.worker import Worker
from campaignkit.core.runtime import Runtime
from campaignkit.core.serve import settle_memory
from campaignkit.core.settings import Settings

# Six steps, one of them a side effect (the send: the null channel never blocks, so it runs inline, not on the thread
# pool) and one an event to plugins.
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


def runtime_on(options: dict[str, Any], url: str) -> Runtime:
    """A runtime on ``url`` with the benchmark's settings (``options``: picklable, for the worker processes)."""
    settings = Settings(var_dir=Path(options["folder"]), database_url=url, audit_key=options["audit_key"],
                        worker={"batch_size": options["batch_size"], "threads": options["threads"]})
    return Runtime(settings, engine=make_engine(url))


def work_here(runtime: Runtime, profiler: cProfile.Profile | None, alongside: Replay | None = None,
              steps: int = 0) -> dict[str, float]:
    """The work in this process, batch by batch: wall and CPU seconds of the batches (the worker's threads
    included). ``alongside``: after each batch, the ceiling's replay is run up to the same share of its ``steps``,
    so that the two are timed over the same seconds of a host whose speed drifts, each on its own clock."""
    worker = Worker(runtime)
    settle_memory()  # as the worker role does (core/serve.py run_worker)
    seconds = cpu = 0.0
    done = 0
    while True:
        began, began_cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        batch = worker.run_once()
        if profiler:
            profiler.disable()
        seconds += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
        if not batch.claimed:
            break
        done += batch.steps
        if alongside is not None:
            alongside.advance(done / steps if steps else 1.0)
    figures = {"seconds": seconds, "cpu": cpu, "rss": peak_rss_mb()}
    worker.close()
    return figures


def _work_process(options: dict[str, Any], url: str, ready: Any, start: Any, done: Any) -> None:
    """One worker process: connects, says it is ready, waits for the start, runs until no run is due, reports."""
    runtime = runtime_on(options, url)
    with runtime.engine.connect():
        pass  # the connection is made before the clock starts
    worker = Worker(runtime)
    settle_memory()
    ready.put(os.getpid())
    start.wait()
    cpu = time.process_time()
    stats = worker.run_until_idle()
    done.put((time.perf_counter(), time.process_time() - cpu, stats.steps, peak_rss_mb()))
    worker.close()
    runtime.engine.dispose()


def work_in_processes(options: dict[str, Any], url: str, count: int) -> dict[str, float]:
    """``count`` worker processes started together; timed until the last is done (perf_counter is system-wide)."""
    context = multiprocessing.get_context("spawn")
    ready, start, done = context.Queue(), context.Event(), context.Queue()
    processes = [context.Process(target=_work_process, args=(options, url, ready, start, done))
                 for _ in range(count)]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    began = time.perf_counter()
    start.set()
    reports = [done.get() for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode:
            raise SystemExit(f"a worker process exited with {process.exitcode}")
    return {"seconds": max(r[0] for r in reports) - began, "cpu": sum(r[1] for r in reports),
            "rss": max(r[3] for r in reports)}


def work_round(runtime: Runtime, options: dict[str, Any], workers: int, postmaster: int | None,
               profiler: cProfile.Profile | None, alongside: Replay | None, steps: int) -> dict[str, Any]:
    """One round's work on ``runtime``'s database: here (with the replay ``alongside``, if any), or in ``workers``
    processes; with the server's CPU."""
    server_before = server_seconds(postmaster) if postmaster else 0.0
    if workers:
        runtime.engine.dispose()
        work: dict[str, Any] = work_in_processes(options, runtime.settings.database_url, workers)
    else:
        work = work_here(runtime, profiler, alongside, steps)
    if postmaster:
        time.sleep(0.3)  # the workers' backends exit and are reaped: their CPU moves to the postmaster's
    work["server_cpu"] = server_seconds(postmaster) - server_before if postmaster else None
    return work


def capture(databases: Databases, options: dict[str, Any]) -> tuple[Capture, int]:
    """The engine's SQL, recorded from an untimed run on a copy of the launched database; and its steps."""
    runtime = runtime_on(options, databases.url("capture"))
    with runtime.engine.connect():
        pass  # the dialect's first-connect queries are not the engine's
    record = Capture(runtime.engine, Path(options["folder"]) / "capture.pickles").start()
    worker = Worker(runtime)
    steps = worker.run_until_idle().steps
    worker.close()
    record.stop()
    runtime.engine.dispose()
    return record, steps


def replay_done(replay: Replay, name: str, steps: int) -> dict[str, float]:
    """The rest of the replay on the copy ``name``, and its wall and CPU seconds in all."""
    replay.advance(1.0)
    replay.close()
    with reading(replay.engine) as conn:  # the replay did the engine's work: every step record is there
        replayed = conn.execute(select(func.count()).select_from(step_records)).scalar_one()
    replay.engine.dispose()
    if replayed != steps:
        print(f"the replay on {name} wrote {replayed} step records, the engine {steps}", file=sys.stderr)
    return {"seconds": replay.seconds, "cpu": replay.cpu}


def durability(engine: Engine) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            version = conn.execute(text("SHOW server_version")).scalar_one().split()[0]
            shown = ", ".join(f"{name}={conn.execute(text(f'SHOW {name}')).scalar_one()}"
                              for name in ("fsync", "synchronous_commit", "full_page_writes"))
            return f"PostgreSQL {version}: {shown}"
        level = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, level)
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        return f"SQLite: journal_mode={mode}, synchronous={synchronous}"


def step_record_bytes(engine: Engine, steps: int) -> int | None:
    """On PostgreSQL, the step records' table, TOAST and indexes per step: what retention has to keep in check."""
    if engine.dialect.name != "postgresql" or not steps:
        return None
    with engine.connect() as conn:
        return round(conn.execute(text("SELECT pg_total_relation_size('step_records')")).scalar_one() / steps)


def local_postmaster(engine: Engine) -> int | None:
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        return postmaster_of(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--database", help="a PostgreSQL server's URL (a database per run is made in it and dropped "
                        "after); default: SQLite files in a temporary folder")
    parser.add_argument("--workers", type=int, default=0,
                        help="worker processes; 0 (the default): the work runs in the benchmark's own process")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3,
                        help="engine runs, each with its replay of the ceiling alongside (default 3; with an even "
                        "count the figure is the upper of the two middle rounds)")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the ceiling (a capture and the replays)")
    parser.add_argument("--profile", action="store_true", help="profile the work phase with cProfile (in-process)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    if args.targets < 1:
        parser.error("--targets: at least 1 (a launch needs an audience)")

    folder = Path(tempfile.mkdtemp(prefix="ck-engine-bench-"))
    atexit.register(shutil.rmtree, folder, True)  # a million-row database is most of a gigabyte
    databases = Databases(args.database, folder)
    atexit.register(databases.drop_all)
    audience = folder / "audience.csv"
    with audience.open("w") as out:
        out.write("key,email,name,plan\n")
        for i in range(args.targets):
            out.write(f"u{i},u{i}@example.org,User {i},{'pro' if i % 3 else 'free'}\n")
    options = {"folder": str(folder), "audit_key": secrets.token_urlsafe(48), "batch_size": args.batch_size,
               "threads": args.threads}
    url = databases.fresh("bench")
    runtime = runtime_on(options, url)
    upgrade(runtime.engine)
    campaigns = Campaigns(runtime)
    actor = Actor("benchmark")
    campaign_id = campaigns.create(load_definition_text(WORKFLOW, "benchmark.yaml"), actor)
    rss_before = peak_rss_mb()

    began = time.perf_counter()
    launched = campaigns.launch(campaign_id, actor, audience=audience).target_count
    launch_seconds = time.perf_counter() - began

    engine = runtime.engine
    engine.dispose()  # PostgreSQL copies a database nothing is connected to
    works = ["bench", *(f"work{i}" for i in range(1, args.rounds))]  # the first round works on the launched one
    for name in works[1:]:
        databases.fresh(name, template="bench")
    if not args.no_ceiling:
        for name in ("capture", *(f"replay{i}" for i in range(args.rounds))):
            databases.fresh(name, template="bench")
    postmaster = local_postmaster(engine)
    if databases.postgres:
        with databases.admin().connect() as conn:
            conn.execute(text("CHECKPOINT"))  # the launch's and the copies' writes are not the work's
    profiler = cProfile.Profile() if args.profile and not args.workers else None
    record, captured = capture(databases, options) if not args.no_ceiling else (None, 0)
    rounds: list[dict[str, Any]] = []
    for i, name in enumerate(works):
        here = runtime if i == 0 else runtime_on(options, databases.url(name))
        replay = Replay(make_engine(databases.url(f"replay{i}")), record.path, record.rows) if record else None
        # In this process the replay goes alongside the work; with worker processes, right after it.
        work = work_round(here, options, args.workers, postmaster, profiler if i == 0 else None,
                          None if args.workers else replay, captured)
        with reading(here.engine) as conn:
            work["steps"] = conn.execute(select(func.count()).select_from(step_records)).scalar_one()
            work["unfinished"] = conn.execute(select(func.count()).select_from(runs)
                                              .where(runs.c.status != "completed")).scalar_one()
        if i == 0:
            peak_rss = max(work["rss"], peak_rss_mb())  # the launch's, the capture's, the work's with its replay
            shown_durability = durability(engine)
            stored = step_record_bytes(engine, work["steps"])
        here.engine.dispose()
        if replay is not None:
            work["replay"] = replay_done(replay, f"replay{i}", work["steps"])
        rounds.append(work)
    steps = rounds[0]["steps"]
    unfinished = max(each["unfinished"] for each in rounds)
    if any(each["steps"] != steps for each in rounds):
        print(f"the rounds took {', '.join(str(each['steps']) for each in rounds)} steps", file=sys.stderr)
    # The median round: by its fraction of its own replay, else by its speed.
    ranked = sorted(rounds, key=lambda each: each["replay"]["seconds"] / each["seconds"] if "replay" in each
                    else -each["seconds"])
    work = ranked[len(ranked) // 2]
    figures: dict[str, Any] = {
        "targets": launched,
        "launch_seconds": round(launch_seconds, 2),
        "steps": steps,
        "workers": args.workers,
        "rounds": args.rounds,
        "work_seconds": round(work["seconds"], 2),
        "steps_per_second": round(steps / work["seconds"]),
        "rounds_steps_per_second": [round(steps / each["seconds"]) for each in rounds],
        "worker_cpu_us_per_step": round(work["cpu"] / steps * 1e6, 1) if steps else None,
        "rounds_worker_cpu_us_per_step": [round(each["cpu"] / steps * 1e6, 1) for each in rounds] if steps else None,
        "server_cpu_us_per_step": round(work["server_cpu"] / steps * 1e6, 1)
        if work["server_cpu"] is not None and steps else None,
        "peak_rss_mb": round(peak_rss),
        "rss_before_launch_mb": round(rss_before),
        "unfinished_runs": unfinished,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "durability": shown_durability,
        "step_record_bytes": stored,
        "cpu_calibration_seconds": round(cpu_calibration(), 2),
        "machine": machine("sqlalchemy"),
        "affinity": {"benchmark": sorted(os.sched_getaffinity(0)),
                     **({"server": sorted(os.sched_getaffinity(postmaster))} if postmaster else {})},
    }
    if record is not None:
        top = work["replay"]
        figures.update({
            "ceiling_steps_per_second": round(steps / top["seconds"]),
            "rounds_ceiling_steps_per_second": [round(steps / each["replay"]["seconds"]) for each in rounds],
            "ceiling_fraction": round(top["seconds"] / work["seconds"], 3),
            "rounds_ceiling_fraction": [round(each["replay"]["seconds"] / each["seconds"], 3) for each in rounds],
            "ceiling_cpu_us_per_step": round(top["cpu"] / steps * 1e6, 1),
            # On SQLite all of both runs' work is in-process CPU: a fraction a busy host's waits do not blur.
            "ceiling_cpu_fraction": None if databases.postgres else round(top["cpu"] / work["cpu"], 3),
            "statements_per_1000_steps": round(record.statements / steps * 1000, 1),
            "commits_per_1000_steps": round(record.commits / steps * 1000, 1),
        })
    if args.json:
        print(json.dumps(figures))
    else:
        report(figures, args.targets)
    if unfinished:
        print(f"{unfinished} run(s) did not complete", file=sys.stderr)
        sys.exit(1)
    if profiler:
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)


def report(figures: dict[str, Any], targets: int) -> None:
    where = f"{figures['workers']} worker process(es)" if figures["workers"] else "the benchmark's own process"
    cpu = f"workers {figures['worker_cpu_us_per_step']} µs/step"
    if figures["server_cpu_us_per_step"] is not None:
        cpu = (f"server {figures['server_cpu_us_per_step']} µs/step, {cpu} (the server runs on this host: its "
               "processes' times in /proc)")
    elif figures["durability"].startswith("PostgreSQL"):
        cpu += " (the server is not on this host: its CPU is not measured)"
    lines = [
        ("machine", figures["machine"]),
        ("database", figures["durability"]),
        ("targets", figures["targets"]),
        ("launch", f"{figures['launch_seconds']:.2f} s"),
        ("steps", f"{figures['steps']} in {where}"),
        ("work", f"{figures['work_seconds']:.2f} s"),
        ("steps/s", f"{figures['steps_per_second']:,}" + (
            f" (the median round of {', '.join(f'{rate:,}' for rate in figures['rounds_steps_per_second'])})"
            if figures["rounds"] > 1 else "")),
        ("CPU", cpu),
        ("affinity", ", ".join(f"{name} on CPU(s) {','.join(map(str, cpus))}"
                               for name, cpus in figures["affinity"].items())),
        ("peak RSS", f"{figures['peak_rss_mb']} MB (before launch {figures['rss_before_launch_mb']} MB)"),
        ("calibration", f"{figures['cpu_calibration_seconds']:.2f} s (a fixed pure-Python loop: compare hosts)"),
    ]
    if figures["step_record_bytes"]:
        lines.insert(8, ("storage", f"{figures['step_record_bytes']} bytes per step record (table and indexes)"))
    fraction = figures.get("ceiling_fraction")
    if fraction is not None:
        lines += [
            ("ceiling", f"{figures['ceiling_steps_per_second']:,} steps/s (the engine's SQL with prepared values, one "
                        f"stream through the driver, replayed {'right after' if figures['workers'] else 'alongside'} "
                        f"the round); engine = {fraction:.2f} of it"),
            ("", f"its CPU here {figures['ceiling_cpu_us_per_step']} µs/step, the engine's "
                 f"{figures['worker_cpu_us_per_step']}"
                 + (f": engine = {figures['ceiling_cpu_fraction']:.2f} of it by CPU (SQLite: all the work is here)"
                    if figures["ceiling_cpu_fraction"] is not None else " (the server's is not in either)")),
            ("rounds", "; ".join(f"{rate:,} steps/s, ceiling {top:,}: {share:.2f}" for rate, top, share in zip(
                figures["rounds_steps_per_second"], figures["rounds_ceiling_steps_per_second"],
                figures["rounds_ceiling_fraction"], strict=True))),
            ("SQL", f"{figures['statements_per_1000_steps']} statements and {figures['commits_per_1000_steps']} "
                    "commits per 1000 steps"),
        ]
    print("\n".join(f"{name:<12} {value}" for name, value in lines))
    scale = max(targets / 100_000, 1)
    checks = [
        ("peak RSS", figures["peak_rss_mb"] <= 300, "<= 300 MB"),
        ("launch", figures["launch_seconds"] <= 5 * scale, f"<= {5 * scale:g} s"),
    ]
    if fraction is not None:
        checks.insert(0, ("fraction of the ceiling", fraction >= 0.35, ">= 0.35"))
    for name, ok, target in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name} {target}")


if __name__ == "__main__":
    main()
