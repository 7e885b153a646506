"""How a simulation's settings expand into its workflow: send the recipient's email (the run starts at its send
moment), then watch for what they do until the observation ends; an email that did not arrive waits for a resend.
Training follows a click or entered credentials (or the observation's end, for everyone): the course is assigned
and its link emailed, with reminders until it is finished.

    start -> send -> observe --(timeout)--> end (or train, for everyone)
              |        |  ^ resend    +--(clicked / submitted)--> train -> learning --(training_finished)--> end
              |        | undelivered (a bounce)                       remind <--(timeout, up to N)--/
              +--------+--> undelivered --(resend)--> send, --(timeout)--> end
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .settings import PhishingSettings
from .vocabulary import RESEND, UNDELIVERED


def _iso(duration: timedelta) -> str:
    return f"PT{int(duration.total_seconds())}S"


TRIGGERS = {"on_click": ["clicked", "submitted"], "on_credentials": ["submitted"], "everyone": [], "never": []}


def phishing_workflow(settings: PhishingSettings) -> dict[str, Any]:
    s = settings
    retry = s.retry.model_dump() if s.retry is not None else {"max_attempts": 5, "backoff_seconds": 60}
    send = {"id": "send", "type": "phishing_send", "edges": {"next": "observe", UNDELIVERED: UNDELIVERED},
            "config": {"channel": s.channel, "return_path": s.return_path, "attempts": retry["max_attempts"],
                       "attacks": [{"name": a.name, "template": a.template, "sender": a.sender}
                                   for a in s.attacks]},
            "retry": retry}
    observe: dict[str, Any] = {
        "id": "observe", "type": "wait_for_event",
        "config": {"events": [RESEND, UNDELIVERED], "timeout": _iso(s.observe_for)},
        "edges": {RESEND: "send", UNDELIVERED: UNDELIVERED, "timeout": "end"}}
    nodes: list[dict[str, Any]] = []
    training = s.training
    if training.assign != "never":
        for trigger in TRIGGERS[training.assign]:
            observe["config"]["events"].append(trigger)
            observe["edges"][trigger] = "train"
        if training.assign == "everyone":
            observe["edges"]["timeout"] = "train"
        nodes += _training_nodes(s)
    undelivered = {"id": UNDELIVERED, "type": "wait_for_event",
                   "config": {"events": [RESEND], "timeout": _iso(s.observe_for)},
                   "edges": {RESEND: "send", "timeout": "end"}}
    return {"start": "start", "nodes": [
        {"id": "start", "type": "entered_campaign", "next": "send"},
        send, observe, undelivered, *nodes,
        {"id": "end", "type": "left_campaign"},
    ]}


def _training_nodes(s: PhishingSettings) -> list[dict[str, Any]]:
    """Assign the course and email its link; then wait for it to be finished, reminding up to N times."""
    t = s.training
    assign = {"provider": t.provider, "course": t.course, "channel": s.channel}
    learning: dict[str, Any] = {"id": "learning", "type": "wait_for_event",
                                "config": {"events": ["training_finished"]}, "edges": {"training_finished": "end"}}
    nodes: list[dict[str, Any]] = [
        {"id": "train", "type": "phishing_training", "config": assign,
         "retry": {"max_attempts": 5, "backoff_seconds": 60}, "edges": {"next": "learning", "failure": "end"}},
        learning,
    ]
    if t.remind_every is not None and t.reminders > 0:
        learning["config"]["timeout"] = _iso(t.remind_every)
        learning["edges"]["timeout"] = "remind_due"
        nodes += [
            {"id": "remind_due", "type": "branch",
             "config": {"condition": f"(context.training_reminders | default(0)) < {t.reminders}"},
             "edges": {"true": "remind", "false": "end"}},
            {"id": "remind", "type": "phishing_training", "config": {**assign, "reminder": True},
             "edges": {"next": "learning", "failure": "learning"}},
        ]
    return nodes
