"""target show: a target's custom fields (e.g. Campaigns Approval), with when and by whom they were set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import NotFound
from .output import Format, render, render_json
from .state import STATE

if TYPE_CHECKING:
    pass


def register(app: typer.Typer) -> None:
    target = typer.Typer(help="Targets and their custom fields.", no_args_is_help=True)
    target.command("show")(show_target)
    app.add_typer(target, name="target")


def show_target(
    key: Annotated[str, typer.Argument(help="Target key, e.g. ada|Payroll.")],
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """A target's custom fields (e.g. Campaigns Approval) with when and by whom they were set."""
    from sqlalchemy import select

    from ..db import reading
    from ..db.schema import targets

    with reading(STATE.runtime().engine) as conn:
        row = conn.execute(select(targets).where(targets.c.key == key)).first()
    if row is None:
        raise NotFound(f"no custom fields recorded for target {key!r}")
    if fmt is Format.json:
        render_json({"key": key, "custom_fields": row.custom_fields, "updated_at": row.updated_at})
        return
    render([{"field": name, **entry} for name, entry in row.custom_fields.items()],
           ["field", "value", "at", "approver", "run_id", "campaign_id"], fmt, title=f"Target {key}")
