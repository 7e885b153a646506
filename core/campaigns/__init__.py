"""Campaigns: defining, launching and ending them (service.py, lifecycle.py), turning an audience into runs
(launch.py), what they and their runs report (queries.py), and sending runs back to a node (retry.py)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import Campaigns, CycleOutcome, LaunchResult, audit_object

__all__ = ["Campaigns", "CycleOutcome", "LaunchResult", "audit_object"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: a listing (queries.py) needs none of the definitions, the engine or the scheduler's
    # cron parsing that the service imports.
    if name in __all__:
        from . import service

        return getattr(service, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
