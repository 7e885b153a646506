"""An ASGI app (the web app) served by uvicorn in a thread on 127.0.0.1. The HTTP(S) receiver, the SMTP server and
the free port are the ones campaignkit ships to plugin authors, in campaignkit.core.testing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from campaignkit.core.settings import WebSettings
from campaignkit.core.testing import free_port
from campaignkit.core.web.transport import uvicorn_config


@contextmanager
def serving(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` until the block ends, as `campaignkit serve` would with the web settings it was built with
    (limits, timeouts, trusted proxies), but on 127.0.0.1; yields its base URL."""
    port = port or free_port()
    state = getattr(app, "state", None)
    web = getattr(state, "web_settings", None) or WebSettings()
    server = uvicorn.Server(uvicorn_config(app, web, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the web server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
