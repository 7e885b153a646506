"""campaignkit plugin: the ``ab_split`` step type."""

from __future__ import annotations

from campaignkit.core import StepType, hookimpl

from .step import AbSplit, AbSplitConfig, assign_variant

__all__ = ["AbSplit", "AbSplitConfig", "assign_variant", "register_step_types"]


@hookimpl
def register_step_types() -> list[type[StepType]]:
    return [AbSplit]
