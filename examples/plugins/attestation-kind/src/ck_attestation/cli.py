"""The kind's commands, mounted by campaignkit as ``campaignkit attestation ...``.

``status NAME`` lists who has attested and who has not, in one cycle (the latest unless ``--cycle``).

The commands read the runtime from the command context's ``obj``: a runtime, or a function that returns one.
campaignkit 0.2 does not yet hand its commands' runtime to a kind's commands through its public API (see the
README); a host that builds its own (a test: ``CliRunner().invoke(app, [...], obj=runtime)``) passes it there.
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
    found = ctx.find_root().obj if ctx.obj is None else ctx.obj
    if found is None:
        raise CampaignkitError(
            "this command needs campaignkit's runtime, which campaignkit does not hand to a "
            "campaign kind's commands yet; see the campaignkit-attestation README"
        )
    return found() if callable(found) else found


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
