"""schedule list: scheduled cycles with their next fire times."""

from __future__ import annotations

from typing import Annotated

import typer

from .output import Format, render
from .state import STATE

group = typer.Typer(help="Scheduled launches.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="schedule")


@group.command("list")
def list_(fmt: Annotated[Format, typer.Option("--format")] = Format.table) -> None:
    """Every scheduled or paused cycle, soonest first."""
    from ..scheduling.upcoming import scheduled_launches

    rows = scheduled_launches(STATE.runtime())
    render(rows, ["launch_id", "campaign_id", "name", "next_fire_time", "status"], fmt, title="Schedule")
