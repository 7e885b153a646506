"""campaign enter: a target enters a running journey, as POST /api/campaigns/{id}/entries does
(core/campaigns/entries.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import CampaignkitError
from .output import Format, info, render_json
from .state import STATE, actor

Ref = Annotated[str, typer.Argument(help="Campaign id, unique id prefix, or name.")]


def register(group: typer.Typer) -> None:
    group.command()(enter)


def _attributes(pairs: list[str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CampaignkitError(f"--attr {pair!r}: write NAME=VALUE, e.g. --attr first_name=Ada")
        attributes[name.strip()] = value
    return attributes


def enter(
    ref: Ref,
    target: Annotated[str, typer.Option("--target", help="The target's key (as the audience's key column holds it).",
                                        metavar="KEY")],
    attr: Annotated[list[str] | None, typer.Option("--attr", help="An attribute of the target, NAME=VALUE (repeat "
                                                   "for more), as a column of an audience row.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table: one line; json: the answer the API gives.")]
    = Format.table,
) -> None:
    """Start a run for one target in a campaign that is running, unless its entry rules say no (then say why).
    Exits 0 either way: a target already in the journey is an answer, not an error."""
    from ..campaigns import Campaigns
    from ..campaigns.entries import enter_target

    runtime = STATE.runtime()
    campaign_id = Campaigns(runtime).resolve(ref)
    outcome = enter_target(runtime, campaign_id, target, _attributes(attr or []), actor=actor(), source="cli")
    if fmt is Format.json:
        render_json(outcome.as_dict())
        return
    info(f"campaign {campaign_id}: {outcome.message}" if outcome.started
         else f"campaign {campaign_id}: no run started: {outcome.message}")
