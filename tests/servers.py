"""An ASGI app (the web app) served by uvicorn in a thread on 127.0.0.1: campaignkit's own `serving`, which the
ck_web fixture uses too. The HTTP(S) receiver, the SMTP server and the free port are in campaignkit.core.testing."""

from __future__ import annotations

from campaignkit.core.testing_web import serving

__all__ = ["serving"]
