"""Campaign kinds that expand into a workflow: `kind: access_review` with its settings instead of nodes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Node = dict[str, Any]


class AccessReviewSettings(BaseModel):
    """The settings of an access review; each run is one user's access to one application."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(default="file", description="Delivery channel for requests and reminders.")
    templates: str = Field(default="email/access_review", description="Folder with request/ and reminder/.")
    user_column: str = "user"
    user_email_column: str = "user_email"
    application_column: str = "application"
    approver_column: str = "approver"
    on_revoke: Literal["update", "revoke"] = Field(
        default="update", description="update: set the custom field; revoke: run the enforcement action too."
    )
    enforcement: str | None = Field(default=None, description="Enforcement action used when on_revoke is revoke.")
    field: str = Field(default="Campaigns Approval", description="The custom field set on decisions.")
    updater: str = Field(default="database", description="The custom-field updater.")
    remind_every: timedelta | None = Field(default=None, description="Remind approvers with pending items.")
    escalate_after: timedelta | None = Field(default=None, description="Hand the item to fallback_approver.")
    fallback_approver: str | None = Field(default=None, description="Gets escalations and self-reviews.")
    if_no_response: Literal["keep", "approve", "revoke"] = Field(
        default="keep", description="What the deadline does to items nobody answered."
    )
    digest: bool = Field(
        default=False, description="One email per approver with all their pending items, instead of one per item."
    )

    @property
    def key_columns(self) -> list[str]:
        """One run per user per application."""
        return [self.user_column, self.application_column]

    @model_validator(mode="after")
    def _consistent(self) -> AccessReviewSettings:
        if self.on_revoke == "revoke" and not self.enforcement:
            raise ValueError("on_revoke: revoke needs `enforcement: NAME` (an enforcement action)")
        if self.escalate_after is not None and not (self.fallback_approver and self.remind_every):
            raise ValueError("escalate_after needs a fallback_approver and remind_every (escalation is checked "
                             "when a reminder is due)")
        return self


def _iso(duration: timedelta) -> str:
    return f"PT{int(duration.total_seconds())}S"


def access_review_workflow(settings: AccessReviewSettings) -> dict[str, Any]:
    s = settings
    approver, user_email = f"target['{s.approver_column}']", f"target['{s.user_email_column}']"
    fallback = s.fallback_approver or ""
    # Nobody reviews their own access: such an item goes to the fallback approver (or cannot be delivered).
    assignee = (f"{{{{ ({approver} or '')|trim if ({approver} or '')|trim|lower != ({user_email} or '')|trim|lower "
                f"else '{fallback}' }}}}")
    assign: Node = {"id": "assign", "type": "record_outcome", "config": {"assignee": assignee}, "next": "request"}
    if s.escalate_after is not None:
        escalate_at = f"{{{{ (now | after('{_iso(s.escalate_after)}')).isoformat() }}}}"
        assign["config"]["context"] = {"escalate_at": escalate_at}
    nodes: list[Node] = [{"id": "start", "type": "entered_campaign", "next": "assign"}, assign]
    decide: Node = {"id": "decide", "type": "wait_for_event",
                    "config": {"events": ["approved", "revoked", "deadline"]},
                    "edges": {"approved": "approve", "revoked": "revoke", "deadline": "no_response"}}
    if s.digest:
        # Requests and reminders are marks on the run; the digest sender gathers them into one email per approver
        # and, when that email cannot be delivered, sends each new item an `undeliverable` event.
        assign["next"] = "has_approver"
        decide["config"]["events"].append("undeliverable")
        decide["edges"]["undeliverable"] = "undeliverable"
        nodes += [
            {"id": "has_approver", "type": "branch", "config": {"condition": "context.assignee"},
             "edges": {"true": "request", "false": "no_approver"}},
            {"id": "no_approver", "type": "record_outcome", "next": "end",
             "config": {"response": "Message Delivery Failed", "context": {"delivery_error": "no approver address"}}},
            {"id": "request", "type": "record_outcome", "config": {"notify": "request"}, "next": "decide"},
            {"id": "undeliverable", "type": "record_outcome", "next": "end",
             "config": {"response": "Message Delivery Failed",
                        "context": {"delivery_error": "{{ context.last_event.error }}"}}},
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
            nodes.append({"id": "escalate", "type": "record_outcome", "next": "request",
                          "config": {"assignee": fallback, "context": {"escalated": "yes"}}})
        nodes.append(reminder)
    nodes += [
        {"id": "approve", "type": "record_outcome", "config": {"response": "Approved", "response_at": "event"},
         "next": "approve_field"},
        {"id": "approve_field", "type": "update_custom_field", "next": "succeeded",
         "config": {"updater": s.updater, "field": s.field, "value": "Approved",
                    "metadata": {"approver": "{{ run.assignee }}"}}},
        {"id": "revoke", "type": "record_outcome", "config": {"response": "Revoked", "response_at": "event"},
         "next": "revoke_field"},
        {"id": "revoke_field", "type": "update_custom_field",
         "next": "enforce" if s.on_revoke == "revoke" else "succeeded",
         "config": {"updater": s.updater, "field": s.field, "value": "Revoked",
                    "metadata": {"approver": "{{ run.assignee }}"}}},
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
    return {"start": "start", "nodes": nodes}


PRESETS: dict[str, tuple[type[BaseModel], Callable[[Any], dict[str, Any]]]] = {
    "access_review": (AccessReviewSettings, access_review_workflow),
}
