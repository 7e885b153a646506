"""Bundled enforcement actions: ``noop`` (a dry run that records what would have been removed), ``webhook`` (an
HTTP endpoint that removes the access) and ``scim`` (a SCIM 2.0 group membership, or the account itself)."""

from __future__ import annotations

from campaignkit.core import EnforcementAction, hookimpl

from .noop import NoopAction
from .scim import ScimAction
from .webhook import WebhookAction


@hookimpl
def register_enforcement_actions() -> list[type[EnforcementAction]]:
    return [NoopAction, WebhookAction, ScimAction]
