"""campaign report: a campaign's runs entered, completed and failed, messages sent and events received, per day or
hour (UTC), with each node's over the same time (core/campaigns/reporting.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from .options import ReportBy, ReportNode, ReportPeriod, ReportSince, ReportUntil
from .output import Format, render, render_json
from .state import STATE

METRICS = ["entered", "completed", "failed", "sent", "events"]


def report(
    ref: Annotated[str, typer.Argument(help="Campaign id, unique id prefix, or name.")],
    by: ReportPeriod = ReportBy.day,
    since: ReportSince = None,
    until: ReportUntil = None,
    node: ReportNode = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Counts over time: runs that entered, completed and failed (or, with --node, that node's visits: started,
    finished ok, failed), messages sent and events received; the table adds each node's counts over the same time.
    Read from counts kept as the work happens, so it is as fast at ten million step records as at ten."""
    from ..campaigns.reporting import campaign_report

    show_report(campaign_report(STATE.runtime(), ref, by=by.value, since=since, until=until, node=node).as_json(), fmt)


def show_report(found: dict[str, Any], fmt: Format) -> None:
    """A report as the API gives it (Report.as_json()), here or from a server (`remote campaign report`)."""
    if fmt is Format.json:
        render_json(found)
        return
    daily = found["by"] == "day"
    rows = [{**period, "period": period["start"][:10] if daily else datetime.fromisoformat(period["start"])}
            for period in found["periods"]]
    if fmt is Format.csv:
        render(rows, ["period", *METRICS], fmt)
        return
    what = f"node {found['node']!r}: visits" if found["node"] is not None else "runs"
    render([*rows, {"period": "total", **found["totals"]}], ["period", *METRICS], fmt,
           title=f"{found['campaign_name']}, {what} per {found['by']} (UTC)")
    if found["node"] is None and found["nodes"]:
        rows = [{**row, "node": row["node"] or "(no node)"} for row in found["nodes"]]  # events only
        render(rows, ["node", *METRICS], fmt, title="Visits per node over the same time")


def register(group: typer.Typer) -> None:
    """`campaign report`, on the campaign command group."""
    group.command("report")(report)
