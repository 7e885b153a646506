"""How a simulation's settings expand into its workflow: send the recipient's email (the run starts at its send
moment), then watch for what they do until the observation ends; an email that did not arrive waits for a resend.

    start -> send -> observe --(timeout)--> end
              |        |  ^ resend
              |        | undelivered (a bounce notification)
              +--------+--> undelivered --(resend)--> send, --(timeout)--> end
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .settings import PhishingSettings
from .steps import UNDELIVERED

RESEND = "resend"


def _iso(duration: timedelta) -> str:
    return f"PT{int(duration.total_seconds())}S"


def phishing_workflow(settings: PhishingSettings) -> dict[str, Any]:
    s = settings
    retry = s.retry.model_dump() if s.retry is not None else {"max_attempts": 5, "backoff_seconds": 60}
    send = {"id": "send", "type": "phishing_send", "edges": {"next": "observe", UNDELIVERED: UNDELIVERED},
            "config": {"channel": s.channel, "return_path": s.return_path, "attempts": retry["max_attempts"],
                       "attacks": [{"name": a.name, "template": a.template, "sender": a.sender}
                                   for a in s.attacks]},
            "retry": retry}
    observe = {"id": "observe", "type": "wait_for_event",
               "config": {"events": [RESEND, UNDELIVERED], "timeout": _iso(s.observe_for)},
               "edges": {RESEND: "send", UNDELIVERED: UNDELIVERED, "timeout": "end"}}
    undelivered = {"id": UNDELIVERED, "type": "wait_for_event",
                   "config": {"events": [RESEND], "timeout": _iso(s.observe_for)},
                   "edges": {RESEND: "send", "timeout": "end"}}
    return {"start": "start", "nodes": [
        {"id": "start", "type": "entered_campaign", "next": "send"},
        send, observe, undelivered,
        {"id": "end", "type": "left_campaign"},
    ]}
