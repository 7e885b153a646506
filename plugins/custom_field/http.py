"""http: sets custom fields in an external inventory with one templated HTTP request per update.

Put values into the URL's path with the segment filter (``/accounts/{{ target_key | segment }}``), which encodes /.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from campaignkit.core import (
    FieldUpdate,
    FieldUpdater,
    HttpCall,
    HttpCallConfig,
    HttpError,
    PermanentStepError,
    StepError,
)

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime


class HttpFieldConfig(HttpCallConfig):
    variables = frozenset({"target_key", "field", "value", "at", "approver", "metadata", "idempotency_key",
                           "run_id", "campaign_id"})
    method: Literal["PUT", "PATCH", "POST"] = "PUT"


class HttpFieldUpdater(FieldUpdater):
    name = "http"
    Config = HttpFieldConfig
    config: HttpFieldConfig

    def __init__(self, config: HttpFieldConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        self._call = HttpCall(config, runtime)

    def update(self, update: FieldUpdate) -> None:
        at = update.at.isoformat()
        metadata = dict(update.metadata)
        variables = {"target_key": update.target_key, "field": update.field, "value": update.value, "at": at,
                     "approver": metadata.get("approver"), "metadata": metadata,
                     "idempotency_key": update.idempotency_key, "run_id": update.run_id,
                     "campaign_id": update.campaign_id}
        default = {**metadata, "field": update.field, "value": update.value, "at": at,
                   "campaign_id": update.campaign_id, "run_id": update.run_id}
        try:
            self._call.send(variables, default, update.idempotency_key)
        except HttpError as exc:
            if exc.temporary:
                raise StepError(f"http: {exc}", retry_after=exc.retry_after) from None
            detail = f": {exc.excerpt}" if exc.body else ""
            raise PermanentStepError(f"http: {exc}{detail}") from None
