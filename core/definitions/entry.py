"""A definition's entry rules (``entry:``): whether a target may enter the journey again, and whether launches read
an audience or runs start only from entries (``POST /api/campaigns/{id}/entries``, ``campaign enter``, a plugin).

The rules themselves are applied where runs start: core/campaigns/entries.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from .reading import shown

if TYPE_CHECKING:
    from .reading import SourceMap
    from .workflow import CampaignDefinition

EVERY_LAUNCH, AFTER_LEAVING, NEVER = "every_launch", "after_leaving", "never"
NAMED = (EVERY_LAUNCH, AFTER_LEAVING, NEVER)
_DURATION = TypeAdapter(timedelta)


def iso_duration(value: timedelta) -> str:
    """P30D, PT12H: how a definition writes a duration."""
    return str(_DURATION.dump_python(value, mode="json"))


class AfterPeriod(BaseModel):
    """``again: {after: P30D}``: again once the period has passed since the target last entered, and it has left."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after: timedelta


def _again(value: Any) -> Any:
    """One rule, with one clear message for anything else (a union would list a failure per alternative)."""
    from .workflow import PositiveDuration, did_you_mean  # workflow.py holds the definition, which holds this

    if isinstance(value, str | AfterPeriod):
        if isinstance(value, str) and value not in NAMED:
            raise ValueError(f"{shown(value)} is not an entry rule: {', '.join(NAMED)}, or {{after: P30D}}"
                             f"{did_you_mean(value, NAMED)}")
        return value
    if isinstance(value, dict) and set(value) == {"after"}:
        try:
            return AfterPeriod(after=TypeAdapter(PositiveDuration).validate_python(value["after"]))
        except ValidationError as exc:
            raise ValueError(f"after: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    raise ValueError(f"must be {', '.join(NAMED)}, or {{after: P30D}} (an ISO 8601 duration)")


Again = Annotated[str | AfterPeriod, BeforeValidator(_again)]


class EntryRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    again: Again = Field(default=EVERY_LAUNCH, description=(
        "every_launch: each launch starts a run for every target in its audience (as without entry rules), and an "
        "entry is refused while the target is in the journey; after_leaving: never while the target is in it; "
        "never: once per target; {after: P30D}: again once it has left and 30 days have passed since it entered."))
    trigger: Literal["audience", "events"] = Field(default="audience", description=(
        "audience: launches read the audience (entries are taken too); events: a launch reads no audience, it "
        "opens the journey, and runs start only from entries."))

    @property
    def period(self) -> timedelta | None:
        return self.again.after if isinstance(self.again, AfterPeriod) else None

    def describe(self) -> str:
        """The rule in a few words, for messages: "never", "after P30D"."""
        return f"after {iso_duration(self.again.after)}" if isinstance(self.again, AfterPeriod) else str(self.again)


DEFAULT_RULES = EntryRules()


def entry_rules(definition: CampaignDefinition) -> EntryRules:
    return definition.entry or DEFAULT_RULES


def entry_problems(definition: CampaignDefinition, source: SourceMap) -> list[str]:
    """What contradicts the entry rules elsewhere in the definition, found at create rather than at launch."""
    rules = definition.entry
    if rules is None or rules.trigger != "events":
        return []
    problems = []
    audience = definition.audience
    if audience is not None and (audience.source != "csv" or (audience.model_extra or {}).get("path")):
        problems.append(f"{source.where(('audience',))}: audience: entry.trigger is events, so a launch reads no "
                        "audience; keep only audience.key (which attribute is the key), or set trigger: audience")
    if definition.schedule is not None and definition.schedule.cron:
        problems.append(f"{source.where(('schedule', 'cron'))}: schedule.cron: entry.trigger is events, so there "
                        "are no cycles to repeat; remove schedule.cron")
    return problems
