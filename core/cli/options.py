"""Option types shared by several commands."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from ..errors import CampaignkitError
from .output import Format

TIME_EXAMPLE = "2030-01-07T09:00:00+01:00"


def iso_time(value: str) -> datetime:
    """Any ISO 8601 time `datetime.fromisoformat` reads: a date, a time with fractions of a second, Z or an offset."""
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time such as {TIME_EXAMPLE}") from None


def event_payload(payload: str) -> dict[str, Any]:
    """``--payload`` of an event: a JSON object, or the one line that says what is wrong with it."""
    try:
        data: Any = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise CampaignkitError(f"--payload: not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(data, dict):
        raise CampaignkitError("--payload: must be a JSON object")
    return data


# The audit trail's filters, for `audit`, `audit export` and their `remote` twins.
AuditTypeOption = Annotated[str | None, typer.Option("--type", help="e.g. 'Interaction Event'")]
SubTypeOption = Annotated[str | None, typer.Option("--sub-type", help="e.g. 'Workflow Started'")]
UserOption = Annotated[str | None, typer.Option(help="user_name")]
Since = Annotated[datetime | None, typer.Option(help="From this time (ISO 8601; UTC unless an offset).",
                                                parser=iso_time, metavar="TIME")]
Until = Annotated[datetime | None, typer.Option(help="Before this time.", parser=iso_time, metavar="TIME")]

# A campaign's runs, as `runs` and `remote runs` filter, search and sort them.
RunStatus = Annotated[str | None, typer.Option("--status",
                                               help="pending, active, waiting, completed, failed, terminated")]
RunSearch = Annotated[str | None, typer.Option("--search", help="The start of the target key (case ignored).")]
RunNode = Annotated[str | None, typer.Option("--node", help="Only runs at this node.")]
RunCycle = Annotated[int | None, typer.Option("--cycle", help="Only runs of this launch (cycle) id.")]
RunSort = Annotated[str, typer.Option("--sort",
                                      help="id, target, status, updated, created or due; prefix - to reverse.")]
RunOffset = Annotated[int, typer.Option("--offset", min=0)]

# Which failed runs a retry sends back, as `campaign retry` and `remote campaign retry` choose them.
RetryStatus = Annotated[str, typer.Option("--status", help="failed (back to the node that failed), or a retry point of "
                                          "the campaign's kind (an access review's enforcement-failed).")]
RetryNode = Annotated[str | None, typer.Option("--node", help="Only runs that stopped at this node.")]
RetryError = Annotated[str | None, typer.Option("--error", help="Only runs whose error contains this text (any case).")]
RetryRuns = Annotated[list[int] | None, typer.Option("--run", help="Only this run (repeat for more).")]
RetryCycle = Annotated[int | None, typer.Option("--cycle", help="Only runs of this cycle (launch id).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Say which runs, change nothing.")]

# A target entering a running campaign, for `campaign enter` and `remote campaign enter`.
EntryTarget = Annotated[str, typer.Option("--target", help="The target's key (as the audience's key column holds it).",
                                          metavar="KEY")]
EntryAttributes = Annotated[list[str] | None, typer.Option("--attr", help="An attribute of the target, NAME=VALUE "
                                                           "(repeat for more), as a column of an audience row.")]
EntryFormat = Annotated[Format, typer.Option("--format", help="table: one line; json: the answer the API gives.")]


# A campaign's report, for `campaign report` and `remote campaign report`.
class ReportBy(StrEnum):
    day = "day"
    hour = "hour"


ReportPeriod = Annotated[ReportBy, typer.Option("--by", help="One row per day or per hour (UTC).")]
ReportSince = Annotated[datetime | None, typer.Option(
    help="From this time (ISO 8601; UTC unless an offset is given), rounded down to the day or hour; default: the "
         "campaign's first activity.", parser=iso_time, metavar="TIME")]
ReportUntil = Annotated[datetime | None, typer.Option(
    help="Up to this time, rounded up; default: now (the last activity, for a campaign that has ended).",
    parser=iso_time, metavar="TIME")]
ReportNode = Annotated[str | None, typer.Option(help="Count the visits of this node instead of the campaign's runs.")]
