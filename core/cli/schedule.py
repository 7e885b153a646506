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
    from sqlalchemy import select

    from ..db import reading
    from ..db.schema import campaigns, launches

    runtime = STATE.runtime()
    query = (select(launches.c.id.label("launch_id"), campaigns.c.id.label("campaign_id"), campaigns.c.name,
                    launches.c.cycle_at.label("next_fire_time"), launches.c.status)
             .join(campaigns, campaigns.c.id == launches.c.campaign_id)
             .where(launches.c.status.in_(("scheduled", "paused"))).order_by(launches.c.cycle_at))
    with reading(runtime.engine) as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    render(rows, ["launch_id", "campaign_id", "name", "next_fire_time", "status"], fmt, title="Schedule")
