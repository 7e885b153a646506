"""Default plugin: the built-in step types."""

from __future__ import annotations

from ...hookspecs import hookimpl
from ...step import StepType
from .actions import Enforcement, SendEvent, SendMessage, UpdateCustomField
from .assign import Assign
from .flow import Branch, EnteredCampaign, LeftCampaign, RandomCohort, TimeDelay, TimeWindow, WaitForEvent
from .outcome import RecordOutcome

BUILTIN_STEP_TYPES: list[type[StepType]] = [
    EnteredCampaign,
    SendMessage,
    WaitForEvent,
    TimeDelay,
    TimeWindow,
    RandomCohort,
    Branch,
    UpdateCustomField,
    Enforcement,
    SendEvent,
    RecordOutcome,
    Assign,
    LeftCampaign,
]


@hookimpl(trylast=True)
def register_step_types() -> list[type[StepType]]:
    return BUILTIN_STEP_TYPES
