"""webhook: removes access by calling an HTTP endpoint (an IdP, a ticketing or provisioning hook), optionally signed.

A 2xx answer means removed; any other final 4xx means the receiver refused, so the access is still there. Put values
into the URL's path with the segment filter (``/access/{{ params.user | segment }}``): a value that would add a path
segment fails the step instead of reaching another resource, whose 404 ``absent_statuses`` would count as removed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from campaignkit.core import (
    EnforcementAction,
    EnforcementRequest,
    EnforcementResult,
    HttpCall,
    HttpCallConfig,
    HttpError,
    SigningSecret,
    StepError,
    redacted,
    signature_headers,
)

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime


class WebhookActionConfig(HttpCallConfig):
    variables = frozenset({"params", "target", "target_key", "idempotency_key", "run_id", "campaign_id"})
    method: Literal["POST", "DELETE", "PUT", "PATCH"] = "POST"
    secret: SigningSecret | None = Field(default=None, description="Signs timestamp and body with HMAC-SHA256, as the "
                                                                "webhook audit sink does.")
    absent_statuses: frozenset[int] = Field(default=frozenset(), description="4xx statuses that mean the access "
                                                                             "is already gone, e.g. 404 for DELETE.")

    @field_validator("absent_statuses")
    @classmethod
    def _client_errors(cls, value: frozenset[int]) -> frozenset[int]:
        if any(not 400 <= status < 500 for status in value):
            raise ValueError("must be 4xx statuses")
        return value

    @model_validator(mode="after")
    def _signed_content(self) -> WebhookActionConfig:
        if self.secret is not None and self.body == "":
            # The signature covers timestamp and body: without a body a captured one fits any user's request.
            raise ValueError("a signed request needs a body (leave body unset for the JSON default)")
        return self


class WebhookAction(EnforcementAction):
    name = "webhook"
    config_key = "webhook_enforcement"  # plugins.config.webhook belongs to the webhook audit sink
    Config = WebhookActionConfig
    config: WebhookActionConfig

    def __init__(self, config: WebhookActionConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        self._call = HttpCall(config, runtime)

    def enforce(self, request: EnforcementRequest) -> EnforcementResult:
        variables = {"params": dict(request.params), "target": dict(request.target), "target_key": request.target_key,
                     "idempotency_key": request.idempotency_key, "run_id": request.run_id,
                     "campaign_id": request.campaign_id}
        default = {"action": "remove_access", **variables}
        try:
            url, answer = self._call.send(variables, default, request.idempotency_key, self._signer())
        except HttpError as exc:
            if exc.temporary or exc.status is None:
                raise StepError(f"webhook: {exc}", temporary=exc.temporary, retry_after=exc.retry_after) from None
            if exc.status in self.config.absent_statuses:
                return EnforcementResult(removed=True, detail={"status": exc.status, "already_absent": True})
            return EnforcementResult(removed=False, detail={"status": exc.status, "body": exc.excerpt})
        return EnforcementResult(removed=True, detail={"status": answer.status, "endpoint": redacted(url)})

    def _signer(self) -> Callable[[bytes], Callable[[], Mapping[str, str]]] | None:
        if self.config.secret is None:
            return None
        secret = self.config.secret.get_secret_value().encode()
        return lambda body: signature_headers(secret, body)
