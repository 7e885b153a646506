"""The access review's commands, under `campaignkit access-review`: its run history and retrying its revocations.

`campaignkit history` and `campaignkit campaign retry-enforcement` stay as aliases (scripts written before the kind
had its own group keep working).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from campaignkit.core.cli.output import Format, info, render, render_json

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

Ref = Annotated[str, typer.Argument(help="Campaign id, unique id prefix, or name.")]


def commands() -> typer.Typer:
    group = typer.Typer(help="Access reviews: run history, retrying failed revocations.", no_args_is_help=True)
    group.command()(history)
    group.command("retry-enforcement")(retry_enforcement)
    return group


def history(
    ctx: typer.Context,
    campaign: Annotated[str, typer.Argument(help="Campaign id, unique id prefix, or name.")],
    status: Annotated[str | None, typer.Option(help="Pending Response, Message Delivery Failed, Approved, Revoked, "
                                               "Terminated")] = None,
    result: Annotated[str | None, typer.Option(help="Success or Failure")] = None,
    approver: Annotated[str | None, typer.Option()] = None,
    application: Annotated[str | None, typer.Option()] = None,
    cycle: Annotated[int | None, typer.Option(help="Only this launch (cycle) id.")] = None,
    sort: Annotated[str, typer.Option(help="user, application, approver, status, time or result; - reverses")]
    = "user",
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """An access review's run history: User, Application, Approver, Response Status, Action Time, Result."""
    from campaignkit.core.campaigns import Campaigns

    from .history import COLUMNS, HistoryQuery, history_csv, history_page, history_summary

    runtime = ctx.obj()
    campaign_id = Campaigns(runtime).resolve(campaign)
    query = HistoryQuery(campaign_id, status=status, result=result, approver=approver, application=application,
                         cycle=cycle, sort=sort.lstrip("-"), descending=sort.startswith("-"), limit=limit,
                         offset=offset)
    if fmt is Format.csv:  # the console's and the API's exports write the same, with no limit
        for chunk in history_csv(runtime, query):
            sys.stdout.write(chunk)
        return
    rows = history_page(runtime, query)
    if fmt is Format.json:
        render_json({"rows": [{c: r[c] for c in COLUMNS} for r in rows],
                     "summary": history_summary(runtime, campaign_id, cycle)})
        return
    if fmt is Format.table and not rows and _not_begun(runtime, campaign_id):
        return
    render(rows, COLUMNS, fmt, title=f"Run history of {campaign}")
    if fmt is Format.table:
        summary = history_summary(runtime, campaign_id, cycle)
        render([{"Response Status": k, "Runs": v} for k, v in summary.items()], ["Response Status", "Runs"], fmt)


def _not_begun(runtime: Runtime, campaign_id: str) -> bool:
    """Says so, instead of an empty table, when the campaign has no runs because it has not begun yet."""
    from campaignkit.core.campaigns.queries import campaign_summary

    summary = campaign_summary(runtime, campaign_id)
    if summary["runs_by_status"] or summary["state"] not in ("draft", "scheduled"):
        return False
    name = summary["name"]
    upcoming = [c["cycle_at"] for c in summary["cycles"] if c["status"] == "scheduled"]
    if upcoming:
        info(f"campaign {name!r} is scheduled for {min(upcoming).isoformat()}: its history starts when the "
             "campaign begins")
    else:
        info(f"campaign {name!r} has not been launched: its history starts when the campaign begins "
             f"(campaignkit campaign launch {campaign_id[:8]})")
    return True


def retry_enforcement(
    ctx: typer.Context,
    ref: Ref,
    cycle: Annotated[int | None, typer.Option(help="Only this launch (cycle) id; default: every cycle.")] = None,
) -> None:
    """Retry the enforcement of every run whose revocation failed (each retry is audited)."""
    from campaignkit.core import Actor
    from campaignkit.core.campaigns import Campaigns

    from .operations import retry_enforcement as retry

    runtime = ctx.obj()
    campaign_id = Campaigns(runtime).resolve(ref)
    retried = retry(runtime, campaign_id, Actor.local_user(), cycle=cycle)
    info(f"campaign {campaign_id}: {retried} enforcement(s) to retry; the workers will run them")
