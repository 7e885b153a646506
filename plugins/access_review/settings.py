"""The settings of an access review (a campaign's ``settings:``): columns, channel, reminders, escalation, what
revoking does, and the retry policy of its side effects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from campaignkit.core.definitions.workflow import PositiveDuration, RetryPolicy
from campaignkit.core.engine.steps.assign import IdentityRules


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
