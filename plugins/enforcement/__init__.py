"""Bundled enforcement actions: ``noop`` (a dry run that records what would have been removed)."""

from __future__ import annotations

from campaignkit.core import EnforcementAction, hookimpl

from .noop import NoopAction


@hookimpl
def register_enforcement_actions() -> list[type[EnforcementAction]]:
    return [NoopAction]
