"""The kind's commands, mounted by campaignkit as ``campaignkit attestation ...``.

``status NAME`` lists who has attested and who has not, in one cycle (the latest unless ``--cycle``).

Like every campaignkit command, they get the runtime by calling the command context's ``obj``, which campaignkit
sets (a test invoking the group on its own passes its runtime there: ``CliRunner().invoke(app, [...],
obj=lambda: runtime)``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from campaignkit.core import CampaignkitError

from .store import Item, campaign_items, resolve


def commands() -> typer.Typer:
    # A callback keeps it a group of commands (typer runs a lone command directly), as campaignkit mounts it.
    group = typer.Typer(
        help="Attestations: who has confirmed the policy, and who has not.", no_args_is_help=True, callback=lambda: None
    )
    group.command()(status)
    return group


def runtime_of(ctx: typer.Context) -> Any:
    if ctx.obj is None:
        raise CampaignkitError("this command needs campaignkit's runtime: run it as `campaignkit attestation ...`")
    return ctx.obj()


def status(
    ctx: typer.Context,
    campaign: Annotated[str, typer.Argument(help="Campaign id, unique id prefix, or name.")],
    cycle: Annotated[int | None, typer.Option(help="This launch (cycle) id instead of the latest.")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="Only the people who have not attested.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of a table.")] = False,
) -> None:
    """Who has attested, when, and who has not."""
    runtime = runtime_of(ctx)
    campaign_id, name = resolve(runtime, campaign)
    launch, items = campaign_items(runtime, campaign_id, cycle)
    attested = sum(1 for item in items if item.attested)
    shown = [item for item in items if not (pending and item.attested)]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "campaign": name,
                    "cycle": launch,
                    "people": len(items),
                    "attested": attested,
                    "rows": [_row(item) for item in shown],
                },
                indent=2,
            )
        )
        return
    if launch is None:
        typer.echo(f"{name}: not launched yet; nobody has been asked")
        return
    rows = [_row(item) for item in shown]
    widths = {key: max([len(key), *(len(str(row[key])) for row in rows)]) for key in COLUMNS}
    typer.echo("  ".join(key.ljust(widths[key]) for key in COLUMNS).rstrip())
    for row in rows:
        typer.echo("  ".join(str(row[key]).ljust(widths[key]) for key in COLUMNS).rstrip())
    typer.echo(f"{name}, cycle {launch}: {attested} of {len(items)} attested, {len(items) - attested} not")


COLUMNS = ("person", "email", "status", "at")


def _row(item: Item) -> dict[str, str]:
    if item.attested:
        state = "Attested" if item.response else "Attested (being recorded)"
    else:
        closed = item.closed or "pending"
        state = closed[:1].upper() + closed[1:]  # No Response, Message Delivery Failed, Terminated, Pending
    at = item.response_at.isoformat(timespec="seconds") if item.response_at and item.attested else ""
    return {"person": item.person, "email": item.recipient, "status": state, "at": at}
