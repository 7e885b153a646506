"""Process roles: worker, scheduler, web, and serve (all three in one process, for the embedded default)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from .engine import Worker
from .runtime import Runtime
from .scheduler import SchedulerService
from .web import create_app
from .web_transport import uvicorn_config

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
    worker = Worker(runtime)
    log.info("worker %s started", worker.worker_id)
    try:
        worker.run_forever(stop)
    finally:
        worker.close()


def run_scheduler(runtime: Runtime, stop: threading.Event) -> None:
    service = SchedulerService(runtime)
    service.start()
    log.info("scheduler started")
    try:
        stop.wait()
    finally:
        service.shutdown()


def web_server(runtime: Runtime) -> uvicorn.Server:
    return uvicorn.Server(uvicorn_config(create_app(runtime), runtime.settings.web))


def run_web(runtime: Runtime) -> None:
    # uvicorn handles SIGINT/SIGTERM itself, then re-raises the signal to the handler it found: ours, so the
    # process ends with status 0 after a graceful shutdown instead of dying of the re-raised signal.
    with stop_on_signals():
        web_server(runtime).run()


def run_all(runtime: Runtime) -> None:
    """Scheduler and worker on threads, the web server in the foreground; stopping it stops them all."""
    with stop_on_signals() as stop:
        threads = [threading.Thread(target=role, args=(runtime, stop), name=role.__name__, daemon=True)
                   for role in (run_scheduler, run_worker)]
        for thread in threads:
            thread.start()
        try:
            web_server(runtime).run()  # returns once uvicorn has shut down gracefully on SIGINT/SIGTERM
        finally:
            stop.set()  # the worker finishes its batch, the scheduler its jobs
            for thread in threads:
                thread.join(timeout=runtime.settings.worker.step_timeout_seconds + 30)
                if thread.is_alive():
                    log.warning("%s did not stop in time; exiting anyway", thread.name)
