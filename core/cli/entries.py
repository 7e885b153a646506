"""campaign enter: a target enters a running journey, as POST /api/campaigns/{id}/entries does
(core/campaigns/entries.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import CampaignkitError
from .options import EntryAttributes, EntryFormat, EntryTarget
from .output import Format, info, render_json
from .state import STATE, actor

Ref = Annotated[str, typer.Argument(help="Campaign id, unique id prefix, or name.")]


def register(group: typer.Typer) -> None:
    group.command()(enter)


def attributes_of(pairs: list[str]) -> dict[str, str]:
    """--attr NAME=VALUE options as a target's attributes."""
    attributes: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CampaignkitError(f"--attr {pair!r}: write NAME=VALUE, e.g. --attr first_name=Ada")
        attributes[name.strip()] = value
    return attributes


def enter(ref: Ref, target: EntryTarget, attr: EntryAttributes = None, fmt: EntryFormat = Format.table) -> None:
    """Start a run for one target in a campaign that is running, unless its entry rules say no (then say why).
    Exits 0 either way: a target already in the journey is an answer, not an error."""
    from ..campaigns import Campaigns
    from ..campaigns.entries import enter_target

    runtime = STATE.runtime()
    campaign_id = Campaigns(runtime).resolve(ref)
    outcome = enter_target(runtime, campaign_id, target, attributes_of(attr or []), actor=actor(), source="cli")
    show_entry(campaign_id, outcome.as_dict(), fmt)


def show_entry(campaign_id: str, answer: dict[str, Any], fmt: Format) -> None:
    """An entry's answer (EntryOutcome.as_dict(), as the API gives it), here or from a server."""
    if fmt is Format.json:
        render_json(answer)
        return
    info(f"campaign {campaign_id}: {answer['message']}" if answer["started"]
         else f"campaign {campaign_id}: no run started: {answer['message']}")
