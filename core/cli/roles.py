"""Process roles: work, worker, scheduler, web, serve."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..campaigns import Campaigns
from ..digests import DigestSender
from ..engine import BatchStats, Worker
from ..runtime import Runtime
from ..serve import run_all, run_scheduler, run_web, run_worker, stop_on_signals
from .output import console, info
from .state import STATE, actor


def _role_runtime() -> Runtime:
    """The runtime of a role, which refuses to start without the audit key rather than fail at its first record."""
    runtime = STATE.runtime()
    _ = runtime.audit_keys
    return runtime


def register(app: typer.Typer) -> None:
    app.command()(work)
    app.command()(worker)
    app.command()(scheduler)
    app.command()(web)
    app.command()(serve)


def work(
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Stop when nothing is due.")] = False,
) -> None:
    """Launch due scheduled cycles and advance due runs (in the foreground)."""
    runtime = _role_runtime()
    if not until_idle:
        with stop_on_signals() as stop:
            run_worker(runtime, stop)
        return
    campaigns = Campaigns(runtime)
    campaigns.launch_due(actor())
    campaigns.apply_due_deadlines(actor())
    engine = Worker(runtime)
    digests = DigestSender(runtime)
    total = BatchStats()
    digests_sent = 0
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      transient=True) as progress:
            task = progress.add_task("working", total=None)
            while True:
                stats = engine.run_once()
                if stats.claimed == 0:
                    # Idle runs may wait on a digest; a digest that failed wakes its runs, so work on after it.
                    sent = digests.send_due()
                    digests_sent += sent.sent
                    if not sent.changed_runs:
                        break
                    continue
                total.claimed += stats.claimed
                total.steps += stats.steps
                total.finished += stats.finished
                progress.update(task, description=f"{total.steps} steps, {total.finished} runs finished")
    finally:
        engine.close()
    sent_note = f", {digests_sent} digest(s) sent" if digests_sent else ""
    info(f"idle: {total.steps} step(s) executed, {total.finished} run(s) finished{sent_note}")


def worker() -> None:
    """Run a worker until SIGINT/SIGTERM; any number may run against one PostgreSQL database."""
    runtime = _role_runtime()
    with stop_on_signals() as stop:
        run_worker(runtime, stop)


def scheduler() -> None:
    """Run the scheduler (one per deployment) until SIGINT/SIGTERM."""
    runtime = _role_runtime()
    with stop_on_signals() as stop:
        run_scheduler(runtime, stop)


def web() -> None:
    """Serve the web app and API (uvicorn) on web.host:web.port."""
    run_web(_role_runtime())


def serve() -> None:
    """Scheduler, worker and web app in one process: the embedded default."""
    runtime = _role_runtime()
    web = runtime.settings.web
    info(f"serving on http://{web.host}:{web.port} (Ctrl-C stops)")
    run_all(runtime)
