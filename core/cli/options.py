"""Option types shared by several commands."""

from __future__ import annotations

from datetime import datetime

import typer

TIME_EXAMPLE = "2030-01-07T09:00:00+01:00"


def iso_time(value: str) -> datetime:
    """Any ISO 8601 time `datetime.fromisoformat` reads: a date, a time with fractions of a second, Z or an offset."""
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time such as {TIME_EXAMPLE}") from None
