"""Process roles: worker, scheduler, web, and serve (all three in one process, for the embedded default)."""

from __future__ import annotations

import errno
import gc
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .errors import CampaignkitError

if TYPE_CHECKING:  # the web server and the scheduler load only in the roles that run them
    import uvicorn

    from .runtime import Runtime
    from .settings import WebSettings

log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, so a role finishes its current batch and exits cleanly."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_worker(runtime: Runtime, stop: threading.Event) -> None:
    from .engine.worker import Worker

    worker = Worker(runtime)
    settle_memory()
    log.info("worker %s started", worker.worker_id)
    try:
        worker.run_forever(stop)
    finally:
        worker.close()


def run_scheduler(runtime: Runtime, stop: threading.Event) -> None:
    from .scheduling.service import SchedulerService

    service = SchedulerService(runtime)
    service.start()
    log.info("scheduler started")
    try:
        stop.wait()
    finally:
        service.shutdown()


def web_server(runtime: Runtime) -> uvicorn.Server:
    import uvicorn

    from .web import create_app
    from .web.transport import uvicorn_config

    server = uvicorn.Server(uvicorn_config(create_app(runtime), runtime.settings.web))
    settle_memory()
    return server


def settle_memory() -> None:
    """Before serving or working for long: what start-up built (the app's routes, models, templates, the plugins)
    leaves the garbage collector's sight, and the collector runs less often (collect_less_often).

    Without it, a full collection walked those objects every few hundred requests: under a burst of tracking hits,
    a pause of about 90 ms every 0.4 s that every request in flight waited through (its p99 was 105 ms, 44 ms with
    this); and in a worker a quarter of its CPU went to the collector (BENCHMARKS.md, "Engine")."""
    gc.collect()
    gc.freeze()
    collect_less_often()


def collect_less_often() -> None:
    """The garbage collector's youngest generation is collected every 10 000 allocations instead of 700.

    A worker's batch makes tens of thousands of objects that live until it is written (run states, step contexts,
    records): at 700 the collector walked them again and again. Memory stays as flat: what reference counting frees
    goes at once, and cycles at the next collection."""
    gc.set_threshold(10_000, 10, 10)


def listen(web: WebSettings) -> socket.socket:
    """The web server's socket, bound before anything starts: a port in use is one line, not uvicorn's log."""
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY on accepted connections only for such sockets, and without it a
    # response written as headers then body waits for the client's delayed ACK (40 ms a request).
    sock = socket.socket(socket.AF_INET6 if ":" in web.host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart need not wait
    try:
        sock.bind((web.host, web.port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CampaignkitError(f"port {web.port} on {web.host} is already in use (another campaignkit serve or "
                                   "web?); choose another with --port, or set web.port") from None
        raise CampaignkitError(f"cannot listen on {web.host}:{web.port}: {exc.strerror or exc}; choose another "
                               "address with --host and --port, or set web.host and web.port") from None
    return sock


def run_web(runtime: Runtime, sock: socket.socket | None = None) -> None:
    sock = sock or listen(runtime.settings.web)
    # uvicorn handles SIGINT/SIGTERM itself, then re-raises the signal to the handler it found: ours, so the
    # process ends with status 0 after a graceful shutdown instead of dying of the re-raised signal.
    with stop_on_signals():
        web_server(runtime).run(sockets=[sock])


def run_all(runtime: Runtime, sock: socket.socket | None = None) -> None:
    """Scheduler and worker on threads, the web server in the foreground; stopping it stops them all."""
    sock = sock or listen(runtime.settings.web)  # before the threads: a taken port starts nothing
    with stop_on_signals() as stop:
        threads = [threading.Thread(target=role, args=(runtime, stop), name=role.__name__, daemon=True)
                   for role in (run_scheduler, run_worker)]
        for thread in threads:
            thread.start()
        try:
            web_server(runtime).run(sockets=[sock])  # returns once uvicorn has shut down on SIGINT/SIGTERM
        finally:
            stop.set()  # the worker finishes its batch, the scheduler its jobs
            for thread in threads:
                thread.join(timeout=runtime.settings.worker.step_timeout_seconds + 30)
                if thread.is_alive():
                    log.warning("%s did not stop in time; exiting anyway", thread.name)
