"""Process roles: work, worker, scheduler, web, serve."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .output import info, progress
from .state import STATE, actor

if TYPE_CHECKING:
    from ..runtime import Runtime

Host = Annotated[str | None, typer.Option("--host", help="Address to listen on (default: web.host, 127.0.0.1).")]
Port = Annotated[int | None, typer.Option("--port", min=1, max=65535, help="Port to listen on (default: web.port, "
                                          "8080).")]


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
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..campaigns import Campaigns
    from ..engine.worker import BatchStats, Worker
    from ..serve import collect_less_often, run_worker, stop_on_signals

    runtime = _role_runtime()
    if not until_idle:
        with stop_on_signals() as stop:
            run_worker(runtime, stop)
        return
    campaigns = Campaigns(runtime)
    campaigns.launch_due(actor())
    campaigns.apply_due_deadlines(actor())
    engine = Worker(runtime)
    collect_less_often()  # as the worker role, without freezing start-up's objects: this command ends when idle
    between = [job for kind in runtime.kinds.values() for job in kind.jobs() if job.also_in_work]
    total = BatchStats()
    done: list[str] = []
    try:
        with progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as spinner:
            task = spinner.add_task("working", total=None)
            while True:
                stats = engine.run_once()
                if stats.claimed == 0:
                    # Idle runs may wait on a kind's job (a digest); one that changed runs means more work.
                    outcomes = [job.run(runtime) for job in between]
                    done += [outcome.summary for outcome in outcomes if outcome.summary]
                    if not any(outcome.changed_runs for outcome in outcomes):
                        break
                    continue
                total.claimed += stats.claimed
                total.steps += stats.steps
                total.finished += stats.finished
                spinner.update(task, description=f"{total.steps} steps, {total.finished} runs finished")
    finally:
        engine.close()
    also = "".join(f", {summary}" for summary in done)
    info(f"idle: {total.steps} step(s) executed, {total.finished} run(s) finished{also}")


def worker() -> None:
    """Run a worker until SIGINT/SIGTERM; any number may run against one PostgreSQL database."""
    from ..serve import run_worker, stop_on_signals

    runtime = _role_runtime()
    with stop_on_signals() as stop:
        run_worker(runtime, stop)


def scheduler() -> None:
    """Run the scheduler (one per deployment) until SIGINT/SIGTERM."""
    from ..serve import run_scheduler, stop_on_signals

    runtime = _role_runtime()
    with stop_on_signals() as stop:
        run_scheduler(runtime, stop)


def web(host: Host = None, port: Port = None) -> None:
    """Serve the web app and API (uvicorn) on web.host:web.port, or --host and --port."""
    from ..serve import listen, run_web

    runtime = _web_runtime(host, port)
    sock = listen(runtime.settings.web)
    info(f"serving on http://{_address(runtime)} (Ctrl-C stops)")
    run_web(runtime, sock)


def serve(host: Host = None, port: Port = None) -> None:
    """Scheduler, worker and web app in one process: the embedded default."""
    from ..serve import listen, run_all

    runtime = _web_runtime(host, port)
    sock = listen(runtime.settings.web)
    info(f"serving on http://{_address(runtime)} (Ctrl-C stops)")
    run_all(runtime, sock)


def _web_runtime(host: str | None, port: int | None) -> Runtime:
    """The role's runtime with --host and --port in its web settings."""
    runtime = _role_runtime()
    web = runtime.settings.web
    changes: dict[str, object] = {"host": host or web.host, "port": port or web.port}
    if port and "base_url" not in web.model_fields_set:
        # Links and the decision pages' same-site check use base_url: its default follows the port it serves on.
        from urllib.parse import urlsplit

        default = urlsplit(web.base_url)
        changes["base_url"] = default._replace(netloc=f"{default.hostname}:{port}").geturl()
    runtime.settings.web = web.model_copy(update=changes)
    return runtime


def _address(runtime: Runtime) -> str:
    web = runtime.settings.web
    return f"[{web.host}]:{web.port}" if ":" in web.host else f"{web.host}:{web.port}"
