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
    web = runtime.settings.web
    return uvicorn.Server(uvicorn.Config(create_app(runtime), host=web.host, port=web.port, log_level="info",
                                         access_log=False))


def run_web(runtime: Runtime) -> None:
    web_server(runtime).run()  # uvicorn handles SIGINT/SIGTERM itself


def run_all(runtime: Runtime) -> None:
    """Scheduler and worker on threads, the web server in the foreground; stopping it stops them all."""
    stop = threading.Event()
    threads = [threading.Thread(target=role, args=(runtime, stop), name=role.__name__, daemon=True)
               for role in (run_scheduler, run_worker)]
    for thread in threads:
        thread.start()
    try:
        web_server(runtime).run()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
