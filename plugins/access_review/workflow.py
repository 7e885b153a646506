"""How an access review's settings expand into its workflow: assign (never to the user under review), request,
wait for the decision with reminders and escalation, then set the field and enforce a revocation."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from .settings import AccessReviewSettings

Node = dict[str, Any]


def _iso(duration: timedelta) -> str:
    return f"PT{int(duration.total_seconds())}S"


def _literal(value: str) -> str:
    """A fixed value inside a template: a configured address is data, never template code."""
    return "{{ " + json.dumps(value) + " }}"


def _apply_retry(node: Node, settings: AccessReviewSettings) -> None:
    """The review's retry policy and timeout on a side-effecting node, as a journey author would write them."""
    if settings.retry is not None:
        node["retry"] = settings.retry.model_dump()
    if settings.timeout_seconds is not None:
        node["timeout_seconds"] = settings.timeout_seconds


def access_review_workflow(settings: AccessReviewSettings) -> dict[str, Any]:
    s = settings
    user_email = f"{{{{ target['{s.user_email_column}'] }}}}"
    fallbacks = [_literal(address) for address in s.fallbacks]
    # Nobody reviews their own access: such an item goes to a fallback approver, checked the same way; an item with
    # no approver, or only the user, cannot be delivered (Message Delivery Failed, the reason in its context).
    assign: Node = {"id": "assign", "type": "assign", "edges": {"next": "request", "none": "no_approver"},
                    "config": {"candidates": [f"{{{{ target['{s.approver_column}'] }}}}", *fallbacks],
                               "subject": user_email, "identity": s.identity.model_dump()}}
    nodes: list[Node] = [{"id": "start", "type": "entered_campaign", "next": "assign"}, assign]
    if s.escalate_after is not None:
        escalate_at = f"{{{{ (now | after('{_iso(s.escalate_after)}')).isoformat() }}}}"
        assign["edges"]["next"] = "escalation_clock"
        nodes.append({"id": "escalation_clock", "type": "record_outcome", "next": "request",
                      "config": {"context": {"escalate_at": escalate_at}}})
    nodes.append({"id": "no_approver", "type": "record_outcome", "next": "end",
                  "config": {"response": "Message Delivery Failed",
                             "context": {"delivery_error": "{{ context.assignment_problem }}"}}})
    decide: Node = {"id": "decide", "type": "wait_for_event",
                    "config": {"events": ["approved", "revoked", "deadline"]},
                    "edges": {"approved": "approve", "revoked": "revoke", "deadline": "no_response"}}
    if s.digest:
        # Requests and reminders are marks on the run; the digest sender gathers them into one email per approver
        # and, when that email cannot be delivered, sends each new item an `undeliverable` event.
        decide["config"]["events"].append("undeliverable")
        decide["edges"]["undeliverable"] = "undeliverable"
        nodes += [
            {"id": "request", "type": "record_outcome", "config": {"notify": "request"}, "next": "decide"},
            {"id": "undeliverable", "type": "record_outcome", "next": "end",
             "config": {"response": "Message Delivery Failed",
                        "context": {"delivery_error": "{{ context.last_event.payload.error }}"}}},
        ]
        reminder: Node = {"id": "remind", "type": "record_outcome", "config": {"notify": "reminder"}, "next": "decide"}
    else:
        nodes += [
            {"id": "request", "type": "send_message", "edges": {"next": "decide", "failure": "undeliverable"},
             "config": {"channel": s.channel, "template": f"{s.templates}/request", "to": "{{ context.assignee }}"},
             "retry": {"max_attempts": 5, "backoff_seconds": 60}},
            {"id": "undeliverable", "type": "record_outcome", "config": {"response": "Message Delivery Failed"},
             "next": "end"},
        ]
        reminder = {"id": "remind", "type": "send_message", "edges": {"next": "decide", "failure": "decide"},
                    "config": {"channel": s.channel, "template": f"{s.templates}/reminder",
                               "to": "{{ context.assignee }}"}}
    nodes.append(decide)
    if s.remind_every is not None:
        decide["config"]["timeout"] = _iso(s.remind_every)
        decide["edges"]["timeout"] = "remind"
        if s.escalate_after is not None:
            decide["edges"]["timeout"] = "escalation_due"
            nodes.append({"id": "escalation_due", "type": "branch",
                          "config": {"condition": "context.escalated is not defined and "
                                                  "now.isoformat() >= context.escalate_at"},
                          "edges": {"true": "escalate", "false": "remind"}})
            # The hand-over is checked like the first assignment: never to the user under review. With nobody
            # eligible the item stays where it is, and the run says why.
            nodes.append({"id": "escalate", "type": "assign", "edges": {"next": "escalated", "none": "not_escalated"},
                          "config": {"candidates": fallbacks, "subject": user_email, "hand_over": True,
                                     "identity": s.identity.model_dump()}})
            nodes.append({"id": "escalated", "type": "record_outcome", "next": "request",
                          "config": {"context": {"escalated": "yes"}}})
            nodes.append({"id": "not_escalated", "type": "record_outcome", "next": "remind",
                          "config": {"context": {"escalated": "{{ context.assignment_problem }}"}}})
        nodes.append(reminder)
    # Who decided is the decision's own recipient (the link names them), whoever holds the item by the time a worker
    # applies it; a deadline decides for nobody, so the field names the assignee then.
    decided_by = {"decided_by": "{{ context.last_event.payload.approver | default(run.assignee) }}"}
    approver = {"approver": "{{ context.decided_by | default(run.assignee) }}"}
    nodes += [
        {"id": "approve", "type": "record_outcome", "next": "approve_field",
         "config": {"response": "Approved", "response_at": "event", "context": decided_by}},
        {"id": "approve_field", "type": "update_custom_field", "next": "succeeded",
         "config": {"updater": s.updater, "field": s.field, "value": "Approved", "metadata": approver}},
        {"id": "revoke", "type": "record_outcome", "next": "revoke_field",
         "config": {"response": "Revoked", "response_at": "event", "context": decided_by}},
        {"id": "revoke_field", "type": "update_custom_field",
         "next": "enforce" if s.on_revoke == "revoke" else "succeeded",
         "config": {"updater": s.updater, "field": s.field, "value": "Revoked", "metadata": approver}},
        {"id": "succeeded", "type": "record_outcome", "config": {"result": "Success"}, "next": "end"},
    ]
    if s.on_revoke == "revoke":
        nodes += [
            {"id": "enforce", "type": "enforcement_action", "edges": {"next": "succeeded", "failure": "failed"},
             "config": {"action": s.enforcement,
                        "params": {"application": f"{{{{ target['{s.application_column}'] }}}}",
                                   "user": f"{{{{ target['{s.user_column}'] }}}}"}}},
            {"id": "failed", "type": "record_outcome", "config": {"result": "Failure"}, "next": "end"},
        ]
    no_response: Node = {"id": "no_response", "type": "record_outcome", "next": "end",
                         "config": {"context": {"no_response_policy": s.if_no_response}}}
    if s.if_no_response == "approve":
        no_response.update(config={"response": "Approved", "response_at": "now",
                                   "context": {"no_response_policy": "approve"}}, next="approve_field")
    elif s.if_no_response == "revoke":
        no_response.update(config={"response": "Revoked", "response_at": "now",
                                   "context": {"no_response_policy": "revoke"}}, next="revoke_field")
    nodes += [no_response, {"id": "end", "type": "left_campaign"}]
    for node in nodes:
        if node["type"] in ("update_custom_field", "enforcement_action"):
            _apply_retry(node, s)
    return {"start": "start", "nodes": nodes}
