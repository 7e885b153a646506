"""Campaign kinds that expand into a workflow: `kind: access_review` with its settings instead of nodes."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .steps.assign import IdentityRules
from .workflow import PositiveDuration, RetryPolicy

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
    # Bounded (one second to ten years) so that every reminder and escalation time can be computed and stored.
    remind_every: PositiveDuration | None = Field(default=None, description="Remind approvers with pending items.")
    escalate_after: PositiveDuration | None = Field(default=None, description="Hand the item to fallback_approver.")
    fallback_approver: str | list[str] | None = Field(
        default=None, description="Gets escalations and self-reviews: an address, or a list tried in order (one "
        "who is the user under review is passed over).")
    identity: IdentityRules = Field(
        default_factory=IdentityRules, description="How the approver is compared with the user under review.")
    if_no_response: Literal["keep", "approve", "revoke"] = Field(
        default="keep", description="What the deadline does to items nobody answered."
    )
    digest: bool = Field(
        default=False, description="One email per approver with all their pending items, instead of one per item."
    )
    retry: RetryPolicy | None = Field(
        default=None, description="Attempts and backoff of the field update and enforcement steps, as a journey "
        "node's retry (max_attempts, backoff_seconds, backoff_factor, max_backoff_seconds); unset: the engine's "
        "default.")
    timeout_seconds: float | None = Field(
        default=None, gt=0, le=3600, description="Timeout of one attempt of those steps; unset: "
        "worker.step_timeout_seconds.")

    @property
    def fallbacks(self) -> list[str]:
        value = self.fallback_approver
        return [] if not value else [value] if isinstance(value, str) else list(value)

    def target_problem(self, attributes: Mapping[str, Any]) -> str | None:
        """Why a row cannot be reviewed: without the user's identity, self-review could not be prevented."""
        if not str(attributes.get(self.user_email_column) or "").strip():
            return f"empty {self.user_email_column!r} (the user's identity: nobody may review their own access)"
        return None

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


PRESETS: dict[str, tuple[type[BaseModel], Callable[[Any], dict[str, Any]]]] = {
    "access_review": (AccessReviewSettings, access_review_workflow),
}


# Template variables a kind adds to the engine's own (target, context, run, now, links), by name.
KIND_TEMPLATE_NAMES: dict[str, frozenset[str]] = {"access_review": frozenset({"review"})}
TemplateExtras = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]


def template_extras(kind: str, settings: Mapping[str, Any]) -> TemplateExtras | None:
    """The variables a kind adds for a run, from its target and facets; None for kinds that add none.

    Access reviews give ``review``: the user, their e-mail, the application and the approver under stable names,
    whatever the audience's columns are called, so the bundled templates work with any column settings.
    """
    if kind != "access_review":
        return None
    s = AccessReviewSettings.model_validate(dict(settings))

    def review(target: Mapping[str, Any], facets: Mapping[str, Any]) -> dict[str, Any]:
        return {"review": {"user": str(target.get(s.user_column) or ""),
                           "user_email": str(target.get(s.user_email_column) or ""),
                           "application": str(target.get(s.application_column) or ""),
                           "approver": str(facets.get("assignee") or target.get(s.approver_column) or "")}}

    return review


def kind_templates(kind: str, settings: Mapping[str, Any], row: Mapping[str, Any],
                   now: datetime) -> list[tuple[str, dict[str, Any], bool]]:
    """Templates a kind renders outside the workflow's nodes, each with the variables it gets for ``row`` and
    whether it must exist: a digest review's digest email (its HTML part is optional)."""
    if kind != "access_review" or not settings.get("digest"):
        return []
    from .digests import sample_digest_variables  # digests build on these settings

    s = AccessReviewSettings.model_validate(dict(settings))
    variables = sample_digest_variables(s, row, now)
    return [(f"{s.templates}/digest/{name}", variables, name != "body.html")
            for name in ("subject.txt", "body.txt", "body.html")]


def target_check(kind: str, settings: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], str | None] | None:
    """What a kind requires of each audience row at launch, when it requires anything."""
    preset = PRESETS.get(kind)
    if preset is None:
        return None
    check = getattr(preset[0].model_validate(dict(settings)), "target_problem", None)
    return check if callable(check) else None
