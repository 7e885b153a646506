"""noop: removes nothing and reports what it would have removed, for dry runs."""

from __future__ import annotations

from campaignkit.core import EnforcementAction, EnforcementRequest, EnforcementResult


class NoopAction(EnforcementAction):
    name = "noop"

    def enforce(self, request: EnforcementRequest) -> EnforcementResult:
        return EnforcementResult(removed=True, detail={"dry_run": True, "would_remove": dict(request.params)})
