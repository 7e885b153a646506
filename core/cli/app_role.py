"""db app-role: the PostgreSQL grants of an application role that cannot rewrite the audit trail."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .output import info
from .state import STATE


def db_app_role(
    name: Annotated[str, typer.Argument(help="An existing PostgreSQL login role, not the tables' owner.")],
    apply: Annotated[bool, typer.Option("--apply", help="Execute the SQL now, as the configured (owning) "
                                        "connection, instead of printing it.")] = False,
) -> None:
    """Print the SQL that lets NAME run campaignkit while it can only INSERT and SELECT audit records.

    Migrations (`campaignkit init`, `db upgrade`) keep running as the owner; run this again after each upgrade.
    """
    from ..db import writing
    from ..db.app_role import app_role_sql, apply_app_role

    runtime = STATE.runtime()
    with writing(runtime.engine) as conn:
        statements = app_role_sql(conn, name)
        if apply:
            apply_app_role(conn, statements)
    if apply:
        info(f"{len(statements)} statement(s) applied: {name} may run campaignkit; audit_history is "
             "insert-only for it")
        return
    sys.stdout.write("-- Run as the owner of the campaignkit tables; migrations keep running as the owner.\n")
    sys.stdout.write("".join(f"{statement};\n" for statement in statements))
