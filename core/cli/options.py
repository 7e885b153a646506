"""Option types shared by several commands."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

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
