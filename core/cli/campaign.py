"""campaign create / update / list / show / launch / terminate / pause / resume."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import CampaignkitError
from .options import DryRun, RetryCycle, RetryError, RetryNode, RetryRuns, RetryStatus, iso_time
from .output import Format, info, progress, render, render_json
from .state import STATE, actor

if TYPE_CHECKING:
    from ..campaigns import Campaigns
    from ..campaigns.retry import RetrySelection

group = typer.Typer(help="Define, launch and end campaigns.", no_args_is_help=True)
Ref = Annotated[str, typer.Argument(help="Campaign id, unique id prefix, or name.")]
FileArg = Annotated[Path, typer.Argument(help="Campaign definition (YAML or JSON).", dir_okay=False)]


def register(app: typer.Typer) -> None:
    from . import entries, simulate  # simulate, simulations, simulation, delete-simulation; enter (light too)

    simulate.register(group)
    entries.register(group)
    from . import report  # campaign report (light too: it loads the reporting when it runs)

    report.register(group)
    app.add_typer(group, name="campaign")


@group.command()
def create(
    file: FileArg,
    update_existing: Annotated[bool, typer.Option("--update-existing", help="Update a campaign of the same "
                                                  "folder and name instead of failing.")] = False,
) -> None:
    """Create a campaign from a definition file (validated first; nothing is kept if it is invalid)."""
    from sqlalchemy import select

    from ..campaigns import Campaigns
    from ..db import reading
    from ..db.schema import campaigns as campaigns_table
    from ..definitions.loader import load_definition_file

    runtime = STATE.runtime()
    loaded = load_definition_file(file, runtime.settings.definitions, runtime.kinds)
    service = Campaigns(runtime)
    if update_existing:
        with reading(runtime.engine) as conn:
            existing = conn.execute(select(campaigns_table.c.id).where(
                campaigns_table.c.name == loaded.definition.name,
                campaigns_table.c.folder == loaded.definition.folder)).scalar()
        if existing:
            major, minor = service.update(existing, loaded, actor())
            info(f"updated campaign {existing} ({loaded.definition.name!r}, version {major}.{minor})")
            return
    campaign_id = service.create(loaded, actor())
    info(f"created campaign {campaign_id} ({loaded.definition.name!r}, version {loaded.definition.version})")


@group.command()
def update(ref: Ref, file: FileArg) -> None:
    """Replace a campaign's definition; a campaign with runs gets a new version and its runs keep theirs."""
    from ..definitions.loader import load_definition_file

    service, campaign_id = _resolved(ref)
    runtime = STATE.runtime()
    loaded = load_definition_file(file, runtime.settings.definitions, runtime.kinds)
    major, minor = service.update(campaign_id, loaded, actor())
    info(f"campaign {campaign_id} is now at version {major}.{minor}")


@group.command("list")
def list_(fmt: Annotated[Format, typer.Option("--format")] = Format.table) -> None:
    """List campaigns with their state, version and run counts."""
    from ..campaigns.queries import list_campaigns

    rows = list_campaigns(STATE.runtime())
    render(rows, ["id", "name", "folder", "kind", "state", "version", "runs", "live_runs", "updated_at"], fmt,
           title="Campaigns")


@group.command()
def show(ref: Ref, fmt: Annotated[Format, typer.Option("--format")] = Format.table) -> None:
    """Show a campaign: state, version, runs by status and its cycles."""
    from ..campaigns import Campaigns
    from ..campaigns.queries import campaign_summary

    runtime = STATE.runtime()
    render_summary(campaign_summary(runtime, Campaigns(runtime).resolve(ref)), fmt)


def render_summary(summary: dict[str, Any], fmt: Format) -> None:
    """A campaign's summary (campaign_summary, or GET /api/campaigns/{id}): its fields, runs by status, cycles."""
    if fmt is Format.json:
        render_json(summary)
        return
    fields = ["id", "name", "folder", "kind", "state", "version", "source", "created_at", "updated_at", "finished_at"]
    counts = sorted(summary["runs_by_status"].items())
    render([{"field": f, "value": summary.get(f)} for f in fields]
           + [{"field": f"runs {status}", "value": count} for status, count in counts],
           ["field", "value"], fmt, title=summary["name"])
    if summary["cycles"]:
        render(summary["cycles"], ["id", "cycle_at", "status", "target_count", "deadline_at"], fmt, title="Cycles")


@group.command()
def launch(
    ref: Ref,
    at: Annotated[datetime | None, typer.Option("--at", help="Launch later (ISO 8601; UTC unless an offset is given).",
                                                parser=iso_time, metavar="TIME")] = None,
    audience: Annotated[Path | None, typer.Option("--audience", help="CSV file instead of the definition's audience.",
                                                  dir_okay=False)] = None,
    unless_running: Annotated[bool, typer.Option("--unless-running", help="Do nothing (exit 0) if the campaign "
                                                 "is already in progress, scheduled or paused.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm what the campaign's kind asks before a launch (e.g. "
                                      "a review that revokes unanswered access).")] = False,
) -> None:
    """Turn the audience into runs now, or schedule the launch (--at, or the definition's schedule)."""
    from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..campaigns import Campaigns
    from ..campaigns.launch import audience_file, estimated_rows
    from ..clock import utc

    runtime = STATE.runtime()
    service = Campaigns(runtime)
    campaign_id = service.resolve(ref)
    state = service.get(campaign_id)["state"]
    if unless_running and state in ("in_progress", "scheduled", "paused"):
        info(f"campaign {campaign_id} is already {state}; nothing to do")
        return
    question = service.launch_question(campaign_id, audience)
    if question and not yes:
        raise CampaignkitError(f"{question}; run again with --yes to launch it")
    definition, _, base_dir = service.definition(campaign_id)
    total = estimated_rows(audience_file(definition, base_dir, audience))
    with progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task("reading audience", total=total)
        result = service.launch(campaign_id, actor(), at=utc(at) if at else None, audience=audience,
                                progress=lambda count: bar.update(task, completed=count))
    if result.status == "scheduled":
        info(f"campaign {campaign_id} scheduled for {result.cycle_at.isoformat()} (launch {result.launch_id})")
    else:
        skipped = f"; {result.summary}" if result.summary else ""
        info(f"launched campaign {campaign_id}: {result.target_count} run(s) (launch {result.launch_id}){skipped}")


def _resolved(ref: str) -> tuple[Campaigns, str]:
    from ..campaigns import Campaigns

    service = Campaigns(STATE.runtime())
    return service, service.resolve(ref)


@group.command()
def terminate(ref: Ref) -> None:
    """End every unfinished run as terminated and cancel scheduled cycles."""
    service, campaign_id = _resolved(ref)
    info(f"terminated campaign {campaign_id}: {service.terminate(campaign_id, actor())} unfinished run(s) ended")


@group.command()
def retry(
    ref: Ref,
    status: RetryStatus = "failed",
    node: RetryNode = None,
    error: RetryError = None,
    run: RetryRuns = None,
    cycle: RetryCycle = None,
    dry_run: DryRun = False,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Send failed runs back to the node where they failed, as a new visit with a new idempotency key (each retry
    is audited); --dry-run lists them first."""
    from ..campaigns.retry import RetrySelection, retry_preview, retry_runs

    selection = RetrySelection(status=status, node=node, error=error, run_ids=tuple(run or ()), cycle=cycle)
    _, campaign_id = _resolved(ref)
    outcome = (retry_preview(STATE.runtime(), campaign_id, selection) if dry_run
               else retry_runs(STATE.runtime(), campaign_id, actor(), selection))
    show_retry(campaign_id, selection, outcome.runs, outcome.sample, dry_run, fmt)


def show_retry(campaign_id: str, selection: RetrySelection, count: int, sample: list[dict[str, Any]], dry_run: bool,
               fmt: Format) -> None:
    """A retry's answer, here or from a server (`remote campaign retry`): json as the API gives it."""
    if fmt is Format.json:
        render_json({"retried" if not dry_run else "would_retry": count, "runs": sample})
        return
    if sample and (dry_run or fmt is not Format.table):
        render(sample, ["run_id", "target_key", "node", "to_node", "error"], fmt)
    if fmt is not Format.table:
        return
    which = f"campaign {campaign_id}: {count} run(s) ({selection.describe()})"
    if dry_run:
        listed = f", the first {len(sample)} above" if count > len(sample) else ""
        info(f"{which} would be retried{listed}; nothing changed")
    else:
        info(f"{which} to retry; the workers will run them")


@group.command()
def pause(ref: Ref) -> None:
    """Stop a campaign's schedule and its unfinished runs where they are."""
    service, campaign_id = _resolved(ref)
    info(f"paused campaign {campaign_id}: {service.pause(campaign_id, actor())} run(s) parked")


@group.command()
def resume(ref: Ref) -> None:
    """Restart a paused campaign's schedule and runs."""
    service, campaign_id = _resolved(ref)
    info(f"resumed campaign {campaign_id}: {service.resume(campaign_id, actor())} run(s) released")
