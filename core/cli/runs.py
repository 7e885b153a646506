"""runs (a campaign's run history), runs repair (stuck runs), run show (one run's timeline), event send."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from .options import RunCycle, RunNode, RunOffset, RunSearch, RunSort, RunStatus, event_payload
from .output import Format, info, render, render_json
from .state import STATE, actor

if TYPE_CHECKING:
    from ..campaigns.repair import Report

RUN_COLUMNS = ["id", "target_key", "status", "current_node", "launch_id", "due_at", "updated_at", "error"]
STEP_COLUMNS = ["node_id", "step_type", "visit", "attempt", "started_at", "finished_at", "outcome", "edge", "detail"]


REPAIR_COLUMNS = ["campaign", "kind", "runs", "detail", "action"]


class RunsGroup(TyperGroup):
    """`runs CAMPAIGN` lists a campaign's runs as it always has (it is `runs list CAMPAIGN`); `runs repair` is the
    other command. A campaign named like a command is listed with `runs list NAME`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


def register(app: typer.Typer) -> None:
    group = typer.Typer(cls=RunsGroup, no_args_is_help=True,
                        help="A campaign's runs (`runs CAMPAIGN`, the same as `runs list CAMPAIGN`), and `runs repair` "
                             "for runs that cannot progress.")
    group.command("list")(runs)
    group.command("repair")(repair)
    app.add_typer(group, name="runs")
    run = typer.Typer(help="One run: its timeline.", no_args_is_help=True)
    run.command("show")(show)
    app.add_typer(run, name="run")
    event = typer.Typer(help="Signals from outside into runs.", no_args_is_help=True)
    event.command("send")(send)
    app.add_typer(event, name="event")


def runs(
    campaign: Annotated[str, typer.Argument(help="Campaign id, unique id prefix, or name.")],
    status: RunStatus = None,
    search: RunSearch = None,
    node: RunNode = None,
    cycle: RunCycle = None,
    sort: RunSort = "id",
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    offset: RunOffset = 0,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """List a campaign's runs: filtered, searched and sorted in the database, a page at a time."""
    from ..campaigns import Campaigns
    from ..campaigns.queries import RunQuery, list_runs

    runtime = STATE.runtime()
    campaign_id = Campaigns(runtime).resolve(campaign)
    rows = list_runs(runtime, RunQuery(campaign_id, status=status, search=search, node=node, cycle=cycle,
                                       sort=sort.lstrip("-"), descending=sort.startswith("-"),
                                       limit=limit, offset=offset))
    render(rows, RUN_COLUMNS, fmt, title=f"Runs of {campaign}")


def repair(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be done; change nothing.")] = False,
    campaign: Annotated[str | None, typer.Option("--campaign", help="Only this campaign (id, id prefix or name).")]
    = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Find runs that cannot progress, say what each finding means and what repair does, and do it (each kind of
    fix audited as Operations / Runs Repaired)."""
    from ..campaigns import Campaigns
    from ..campaigns.repair import repair as run_repair

    runtime = STATE.runtime()
    campaign_id = Campaigns(runtime).resolve(campaign) if campaign is not None else None
    render_repair(run_repair(runtime, actor(), campaign_id=campaign_id, dry_run=dry_run), fmt)


def render_repair(report: Report, fmt: Format) -> None:
    """A repair's findings as a table, each kind with what it means in words; or as CSV or JSON."""
    if fmt is Format.json:
        render_json(report.as_dict())
        return
    from ..campaigns.repair import MEANINGS

    if not report.findings and fmt is Format.table:
        info("nothing is stuck: every unfinished run can progress")
        return
    rows = [{**finding.as_dict(), "done": finding.fixed if finding.fixable else None} for finding in report.findings]
    title = "Stuck runs: what repair would do (nothing changed)" if report.dry_run else "Stuck runs: what repair did"
    render(rows, REPAIR_COLUMNS + ([] if report.dry_run else ["done"]), fmt, title=title)
    if fmt is not Format.table:
        return
    for kind in dict.fromkeys(finding.kind for finding in report.findings):
        info(f"{kind}: {MEANINGS[kind]}")
    if report.dry_run and any(finding.fixable for finding in report.findings):
        info("run `campaignkit runs repair` without --dry-run to do it")


def show(
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Show a run and its timeline: every executed node with outcome and edge, in order."""
    from ..campaigns.queries import run_timeline

    render_timeline(run_timeline(STATE.runtime(), run_id), run_id, fmt)


def render_timeline(timeline: dict[str, Any], run_id: int, fmt: Format) -> None:
    """A run and its steps (run_timeline, or GET /api/runs/{id}), and what its kind adds, then its path."""
    if fmt is Format.json:
        render_json(timeline)
        return
    run = timeline["run"]
    summary = ["id", "campaign_name", "target_key", "status", "current_node", "due_at", "error", "created_at",
               "finished_at"]
    render([{"field": f, "value": run.get(f)} for f in summary]
           + [{"field": "context", "value": run["context"]}, {"field": "target", "value": run["target"]}],
           ["field", "value"], fmt, title=f"Run {run_id}")
    render(timeline["steps"], STEP_COLUMNS, fmt, title="Timeline")
    for name, rows in timeline.items():  # what the run's kind adds (an access review: the digests that listed it)
        if name not in ("run", "steps", "path") and isinstance(rows, list) and rows:
            render(rows, list(rows[0]), fmt, title=name.replace("_", " ").capitalize())
    if fmt is Format.table:
        parts = []
        for step in timeline["path"]:
            parts.append(step["node"])
            if step["edge"]:
                parts.append(f"-{step['edge']}->")
            elif step["outcome"] != "ok":
                parts.append(f"[{step['outcome']}]")
        info("path: " + " ".join(parts))


def send(
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    name: Annotated[str, typer.Argument(help="Event name, e.g. opened or approved.")],
    payload: Annotated[str, typer.Option(help="JSON object with the event's data.")] = "{}",
) -> None:
    """Record an event for a run; a run waiting for it becomes due at once."""
    from ..engine.events import send_event

    data = event_payload(payload)
    event_id = send_event(STATE.runtime(), run_id, name, data, source="cli", actor=actor())
    info(f"event {event_id} ({name}) recorded for run {run_id}")
