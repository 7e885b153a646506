"""How an attestation's settings expand into its workflow: send the request with the person's link, wait for their
confirmation (reminding them while they have not answered), record the outcome, end.

    start -> request -> wait_0 --attested--> attested -> end
                          |  \\--deadline--> no_response -> end
                          \\--timeout--> remind_1 -> wait_1 ... (one wait per reminder; the last has no timeout)
             request --failure--> undeliverable -> end

The ``attested`` event comes only from the confirmation page (routes.py); ``deadline`` from campaignkit's scheduler
when the cycle's ``schedule.end_after`` passes. Both are reserved: nobody can post them through the API or CLI.
"""

from __future__ import annotations

import json
from typing import Any

from .settings import AttestationSettings

ATTESTED_EVENT = "attested"
ATTESTATION_RECORDED = "Attestation Recorded"  # its audit sub-type (Attestation.audit_sub_types)
DEADLINE_EVENT = "deadline"  # campaignkit's own, sent to every unfinished run at the cycle's deadline
ATTESTED = "Attested"
NO_RESPONSE = "No Response"
UNDELIVERABLE = "Message Delivery Failed"

Node = dict[str, Any]


def _iso(settings: AttestationSettings) -> str:
    assert settings.remind_every is not None
    return f"PT{int(settings.remind_every.total_seconds())}S"


def attestation_workflow(settings: AttestationSettings) -> dict[str, Any]:
    s = settings
    # The column name is data: written into the template as a string literal, never as template code.
    to = "{{ target[" + json.dumps(s.email_column) + "] }}"
    send = {"channel": s.channel, "to": to}
    nodes: list[Node] = [
        {"id": "start", "type": "entered_campaign", "next": "request"},
        {
            "id": "request",
            "type": "send_message",
            "config": {**send, "template": f"{s.templates}/request"},
            "edges": {"next": "wait_0", "failure": "undeliverable"},
            "retry": {"max_attempts": 5, "backoff_seconds": 60},
        },
    ]
    count = s.reminder_count
    for number in range(count + 1):
        wait: Node = {
            "id": f"wait_{number}",
            "type": "wait_for_event",
            "config": {"events": [ATTESTED_EVENT, DEADLINE_EVENT]},
            "edges": {ATTESTED_EVENT: "attested", DEADLINE_EVENT: "no_response"},
        }
        nodes.append(wait)
        if number < count:
            reminder = f"remind_{number + 1}"
            wait["config"]["timeout"] = _iso(s)
            wait["edges"]["timeout"] = reminder
            # A reminder that cannot be delivered is not the end: the request went out, the link still works.
            nodes.append(
                {
                    "id": reminder,
                    "type": "send_message",
                    "config": {**send, "template": f"{s.templates}/reminder"},
                    "edges": {"next": f"wait_{number + 1}", "failure": f"wait_{number + 1}"},
                }
            )
    nodes += [
        # Action time: when the person confirmed (the event's time), not when a worker got to it.
        {
            "id": "attested",
            "type": "record_outcome",
            "next": "end",
            "config": {"response": ATTESTED, "response_at": "event"},
        },
        {
            "id": "no_response",
            "type": "record_outcome",
            "next": "end",
            "config": {"response": NO_RESPONSE, "response_at": "now"},
        },
        {"id": "undeliverable", "type": "record_outcome", "next": "end", "config": {"response": UNDELIVERABLE}},
        {"id": "end", "type": "left_campaign"},
    ]
    return {"start": "start", "nodes": nodes}
