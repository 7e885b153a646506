"""Option types shared by several commands."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer

from ..errors import CampaignkitError

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
