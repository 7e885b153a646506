"""audit (list), audit export, audit verify, audit checkpoint, audit sinks."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import CampaignkitError
from .options import AuditTypeOption, Since, SubTypeOption, Until, UserOption
from .output import Format, error_line, info, render

if TYPE_CHECKING:
    from ..audit.queries import AuditFilter
    from ..runtime import Runtime

group = typer.Typer(help="The audit trail.", invoke_without_command=True)
# The table's selection; csv and json carry every column, as `audit export` does.
TABLE_COLUMNS = ["audit_id", "audit_timestamp", "user_name", "audit_type", "audit_sub_type", "object_name",
                 "details"]


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="audit")


def _filter(
    runtime: Runtime,
    audit_type: str | None,
    sub_type: str | None,
    user: str | None,
    obj: str | None,
    since: datetime | None,
    until: datetime | None,
) -> AuditFilter:
    from ..audit.queries import AuditFilter
    from ..clock import utc

    return AuditFilter(audit_type, sub_type, user, obj and _object(runtime, obj), utc(since) if since else None,
                       utc(until) if until else None)


def _object(runtime: Runtime, reference: str) -> str:
    """A short campaign id, as tables show it, stands for the campaign's id; anything else is taken as it is."""
    from sqlalchemy import select

    from ..db import reading
    from ..db.schema import campaigns

    if len(reference) < 4 or reference.strip("0123456789abcdef-"):
        return reference
    with reading(runtime.engine) as conn:
        if conn.execute(select(campaigns.c.id).where(campaigns.c.name == reference)).first() is not None:
            return reference  # a campaign's name, which the filter matches itself
        found = conn.execute(select(campaigns.c.id).where(campaigns.c.id.startswith(reference, autoescape=True))
                             .limit(2)).scalars().all()
    return found[0] if len(found) == 1 else reference


@group.callback()
def audit(
    ctx: typer.Context,
    audit_type: AuditTypeOption = None,
    sub_type: SubTypeOption = None,
    user: UserOption = None,
    obj: Annotated[str | None, typer.Option("--object", help="Object id, unique id prefix, or name.")] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """List audit records, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from ..audit.queries import COLUMNS, list_audit
    from .state import STATE

    runtime = STATE.runtime()
    rows = list_audit(runtime, _filter(runtime, audit_type, sub_type, user, obj, since, until), limit=limit)
    render(rows, TABLE_COLUMNS if fmt is Format.table else COLUMNS, fmt, title="Audit trail")


@group.command()
def export(
    audit_type: AuditTypeOption = None,
    sub_type: SubTypeOption = None,
    user: UserOption = None,
    obj: Annotated[str | None, typer.Option("--object")] = None,
    since: Since = None,
    until: Until = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", dir_okay=False, help="File; default stdout.")]
    = None,
) -> None:
    """Stream matching audit records as CSV or JSON lines (audited as a File Export)."""
    from ..audit import Actor, AuditSubType, AuditType, record
    from ..audit.queries import export_audit
    from ..db import writing
    from .state import STATE

    if fmt not in ("csv", "jsonl"):
        raise CampaignkitError("--format: csv or jsonl")
    runtime = STATE.runtime()
    where = _filter(runtime, audit_type, sub_type, user, obj, since, until)
    if output is None:
        count = export_audit(runtime, where, sys.stdout, fmt)
    else:
        with output.open("w", encoding="utf-8", newline="") as handle:
            count = export_audit(runtime, where, handle, fmt)
    matching = where.describe()
    with writing(runtime.engine) as conn:
        record(conn, actor=Actor.local_user(), audit_type=AuditType.CLIENT_JOB, sub_type=AuditSubType.FILE_EXPORT,
               at=runtime.clock.now(), details=f"audit export of {count} record(s) to {output or 'stdout'}"
               + (f", matching {matching}" if matching else ""))
    if output is not None:
        info(f"exported {count} record(s) to {output}")


@group.command("verify")
def verify_(
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", dir_okay=False, help="A checkpoint file kept elsewhere (audit-checkpoints.jsonl): the "
        "chain must still reach its latest validly signed checkpoint, with the same hash.")] = None,
    keep: Annotated[bool, typer.Option(
        "--record", help="Also keep the result as a Security / Audit Verified record: the console's audit log and "
        "GET /api/audit/verification then re-hash only the records written after it.")] = False,
) -> None:
    """Check the keyed hash chain; name the first edited, deleted or re-hashed record."""
    from ..audit.checkpoints import read_checkpoints
    from ..audit.verification import record_verification, verify_trail
    from .state import STATE, actor

    runtime = STATE.runtime()
    found = read_checkpoints(checkpoint, runtime.audit_keys) if checkpoint is not None else None
    if found is not None:
        for problem in found.rejected:
            error_line("warning", f"{checkpoint} {problem}: not trusted")
        if found.latest is None:
            raise CampaignkitError(f"{checkpoint}: no validly signed checkpoint in it")
    verification = verify_trail(runtime, found, checkpoint)  # the console's "Verify now" calls it too
    if keep:
        record_verification(runtime, actor(), verification)
    if verification.broken is not None:
        raise CampaignkitError(verification.summary())
    info(verification.summary())
    if found is None:
        error_line("note", "without --checkpoint a truncated tail cannot be told from a short chain")
    elif found.rejected:
        raise CampaignkitError(f"{checkpoint}: {len(found.rejected)} line(s) rejected (see the warnings above)")


@group.command("checkpoint")
def checkpoint_(
    file: Annotated[Path | None, typer.Option(
        "--file", dir_okay=False, help="Append here instead of audit.checkpoint_file "
        "(default <var_dir>/audit-checkpoints.jsonl).")] = None,
) -> None:
    """Sign the chain's head now: a line in the checkpoint file and a Security / Audit Checkpoint record."""
    from ..audit.checkpoints import take_checkpoint
    from .state import STATE, actor

    taken, path = take_checkpoint(STATE.runtime(), actor(), file)
    info(f"checkpoint of record {taken.audit_id} appended to {path}")


@group.command()
def sinks(fmt: Annotated[Format, typer.Option("--format")] = Format.table) -> None:
    """Each enabled audit sink with its lag and last error."""
    from ..audit.dispatch import AuditDispatcher
    from .state import STATE

    rows = [vars(s) for s in AuditDispatcher(STATE.runtime()).status()]
    render(rows, ["sink", "last_audit_id", "lag", "failures", "last_error", "last_success_at", "next_attempt_at"],
           fmt, title="Audit sinks")
