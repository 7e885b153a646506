"""remote: a campaignkit elsewhere, through its API with a personal token (docs/accounts.md, "Using the API from the
command line"). Each command is one API call (a launch the kind wants confirmed: two), made by remote_client.py; the
server checks the token's role and scope and audits what it does as the token's account."""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from ..errors import CampaignkitError
from .options import (
    AuditTypeOption,
    DryRun,
    EntryAttributes,
    EntryFormat,
    EntryTarget,
    ReportBy,
    ReportNode,
    ReportPeriod,
    ReportSince,
    ReportUntil,
    RetryCycle,
    RetryError,
    RetryNode,
    RetryRuns,
    RetryStatus,
    RunCycle,
    RunNode,
    RunOffset,
    RunSearch,
    RunSort,
    RunStatus,
    Since,
    SubTypeOption,
    Until,
    UserOption,
    event_payload,
    iso_time,
)
from .output import Format, error_line, info, render
from .remote_client import CA_FILE_VARIABLE, TOKEN_VARIABLE, URL_VARIABLE, Remote

group = typer.Typer(
    help="Operate a campaignkit elsewhere through its API, with a personal token (`campaignkit token create`). "
    f"Give the server with --url or {URL_VARIABLE}, and the token with {TOKEN_VARIABLE} or --token-file.",
    no_args_is_help=True)
campaign = typer.Typer(help="Campaigns on the server.", no_args_is_help=True)
run_group = typer.Typer(help="One run on the server.", no_args_is_help=True)
event = typer.Typer(help="Signals into runs on the server.", no_args_is_help=True)
audit = typer.Typer(help="The server's audit trail.", invoke_without_command=True)

CampaignId = Annotated[str, typer.Argument(help="The campaign's id, a unique id prefix, or its name.",
                                           metavar="CAMPAIGN")]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FileArg = Annotated[Path, typer.Argument(help="Campaign definition (YAML or JSON).", dir_okay=False, exists=True)]
Yes = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]
Fmt = Annotated[Format, typer.Option("--format")]
CAMPAIGN_COLUMNS = ["id", "name", "folder", "kind", "state", "version", "runs", "live_runs", "updated_at"]
AUDIT_PAGE = 1000  # the most GET /api/audit gives in one page


def register(app: typer.Typer) -> None:
    group.add_typer(campaign, name="campaign")
    group.add_typer(run_group, name="run")
    group.add_typer(event, name="event")
    group.add_typer(audit, name="audit")
    app.add_typer(group, name="remote")


@group.callback()
def remote(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option("--url", envvar=URL_VARIABLE, metavar="URL",
                                            help="The server, e.g. https://ck.example.org.")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", envvar=TOKEN_VARIABLE, metavar="TOKEN", show_envvar=True,
        help="A personal API token. Given as an option it shows in the process list and the shell's history: "
        f"prefer {TOKEN_VARIABLE} or --token-file.")] = None,
    token_file: Annotated[Path | None, typer.Option("--token-file", dir_okay=False,
                                                    help="A file holding the token (one line).")] = None,
    ca_file: Annotated[Path | None, typer.Option("--ca-file", envvar=CA_FILE_VARIABLE, dir_okay=False,
                                                 help="PEM bundle of a private CA that signed the server's "
                                                 "certificate.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for an answer.")] = 30.0,
) -> None:
    # Checked when a command runs (server(ctx)), so that `remote campaign list --help` needs no server.
    ctx.obj = (url, token, token_file, ca_file, timeout)


def server(ctx: typer.Context) -> Remote:
    found = Remote.configured(*ctx.obj)
    if found.in_clear:
        error_line("warning", f"{found.shown} is plain http: the token crosses the network unencrypted")
    return found


def segment(value: str | int) -> str:
    return quote(str(value), safe="")


def rows_of(found: Any, key: str) -> list[dict[str, Any]]:
    """A listing's rows, whether the API gives a bare list or a page object holding it."""
    if isinstance(found, dict):
        found = found.get(key, found.get("items", []))
    return list(found or [])


# --- campaigns --------------------------------------------------------------------------------------------------


@campaign.command("list")
def campaign_list(ctx: typer.Context, fmt: Fmt = Format.table) -> None:
    """List the server's campaigns with their state, version and run counts."""
    render(server(ctx).every("/api/campaigns", {"limit": 1000}), CAMPAIGN_COLUMNS, fmt, title="Campaigns")


@campaign.command("show")
def campaign_show(ctx: typer.Context, campaign_id: CampaignId, fmt: Fmt = Format.table) -> None:
    """Show a campaign: state, version, runs by status and its cycles."""
    from .campaign import render_summary

    render_summary(server(ctx).call("GET", f"/api/campaigns/{segment(_campaign(ctx, campaign_id))}"), fmt)


def _definition(file: Path) -> tuple[bytes, dict[str, str]]:
    try:
        body = file.read_bytes()
    except OSError as exc:
        raise CampaignkitError(f"{file}: {exc.strerror or exc}") from None
    media = "application/json" if file.suffix.lower() == ".json" else "application/yaml"
    return body, {"Content-Type": f"{media}; charset=utf-8"}


@campaign.command("create")
def campaign_create(ctx: typer.Context, file: FileArg) -> None:
    """Create a campaign on the server from a definition file; its problems are shown by line, column and node."""
    body, headers = _definition(file)
    saved = server(ctx).call("POST", "/api/campaigns", params={"filename": file.name}, content=body, headers=headers)
    info(f"created campaign {saved['id']} ({saved['name']!r}, version {saved['version']})")


@campaign.command("update")
def campaign_update(ctx: typer.Context, campaign_id: CampaignId, file: FileArg) -> None:
    """Replace a campaign's definition; a campaign with runs gets a new version and its runs keep theirs."""
    body, headers = _definition(file)
    saved = server(ctx).call("PUT", f"/api/campaigns/{segment(_campaign(ctx, campaign_id))}/definition",
                             params={"filename": file.name}, content=body, headers=headers)
    info(f"campaign {saved['id']} is now at version {saved['version']}")


@campaign.command("launch")
def campaign_launch(
    ctx: typer.Context,
    campaign_id: CampaignId,
    at: Annotated[datetime | None, typer.Option("--at", help="Launch later (ISO 8601; UTC unless an offset is given).",
                                                parser=iso_time, metavar="TIME")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm what the campaign's kind asks before a launch (e.g. "
                                      "a review that revokes unanswered access) without being asked.")] = False,
) -> None:
    """Launch a campaign now, or at --at; asks what the campaign's kind wants confirmed first."""
    from .remote_client import RemoteError

    remote_ = server(ctx)
    path = f"/api/campaigns/{segment(_campaign(ctx, campaign_id))}/launch"
    body: dict[str, Any] = {"at": at.isoformat()} if at else {}
    try:
        outcome = remote_.call("POST", path, json={**body, "confirm": True} if yes else body)
    except RemoteError as exc:
        if exc.status != 409 or not isinstance(exc.detail, dict) or "question" not in exc.detail:
            raise
        question = str(exc.detail["question"])
        if not _confirmed(f"{question}. Launch it?"):
            raise CampaignkitError(f"not launched: {question}; run again with --yes to launch it") from None
        outcome = remote_.call("POST", path, json={**body, "confirm": True})
    info(str(outcome["message"]))


def _campaign(ctx: typer.Context, reference: str) -> str:
    """The id of the campaign ``reference`` names on the server, as the local commands take it: its id, a unique id
    prefix, or its name (looked up in the server's list: one request more than an id needs)."""
    if UUID.fullmatch(reference):
        return reference
    found = {c["id"] for c in server(ctx).every("/api/campaigns", {"limit": 1000})
             if reference in (c["id"], c["name"]) or c["id"].startswith(reference)}
    if len(found) == 1:
        return found.pop()
    if not found:
        raise CampaignkitError(f"no campaign {reference!r} on the server")
    raise CampaignkitError(f"{reference!r} matches {len(found)} campaigns; give more of the id")


def _confirmed(question: str) -> bool:
    try:
        return typer.confirm(question, default=False)
    except typer.Abort:  # no terminal to answer from (end of input)
        return False


def _operate(ctx: typer.Context, campaign_id: str, action: str) -> None:
    info(str(server(ctx).call("POST", f"/api/campaigns/{segment(_campaign(ctx, campaign_id))}/{action}")["message"]))


@campaign.command("pause")
def campaign_pause(ctx: typer.Context, campaign_id: CampaignId) -> None:
    """Stop a campaign's schedule and its unfinished runs where they are."""
    _operate(ctx, campaign_id, "pause")


@campaign.command("resume")
def campaign_resume(ctx: typer.Context, campaign_id: CampaignId) -> None:
    """Restart a paused campaign's schedule and runs."""
    _operate(ctx, campaign_id, "resume")


@campaign.command("terminate")
def campaign_terminate(ctx: typer.Context, campaign_id: CampaignId, yes: Yes = False) -> None:
    """End every unfinished run as terminated and cancel scheduled cycles (asks first, unless --yes)."""
    remote_ = server(ctx)
    if not yes and not _confirmed(f"Terminate campaign {campaign_id} on {remote_.shown}? Its unfinished runs end"):
        raise CampaignkitError("not terminated: answer y, or run again with --yes")
    _operate(ctx, campaign_id, "terminate")


@campaign.command("retry")
def campaign_retry(
    ctx: typer.Context,
    campaign_id: CampaignId,
    status: RetryStatus = "failed",
    node: RetryNode = None,
    error: RetryError = None,
    run: RetryRuns = None,
    cycle: RetryCycle = None,
    dry_run: DryRun = False,
    fmt: Fmt = Format.table,
) -> None:
    """Send the campaign's failed runs on the server back to the node where they failed (each retry audited there);
    --dry-run lists them first."""
    from ..campaigns.retry import RetrySelection
    from .campaign import show_retry

    selection = RetrySelection(status=status, node=node, error=error, run_ids=tuple(run or ()), cycle=cycle)
    found = _campaign(ctx, campaign_id)
    answer = server(ctx).call("POST", f"/api/campaigns/{segment(found)}/retry", json={
        "status": status, "node": node, "error": error, "runs": list(selection.run_ids), "cycle": cycle,
        "dry_run": dry_run})
    show_retry(found, selection, answer["would_retry" if dry_run else "retried"], answer["runs"], dry_run, fmt)


@campaign.command("enter")
def campaign_enter(ctx: typer.Context, campaign_id: CampaignId, target: EntryTarget, attr: EntryAttributes = None,
                   fmt: EntryFormat = Format.table) -> None:
    """Start a run for one target in a campaign running on the server, unless its entry rules say no (then say
    why). Exits 0 either way: a target already in the journey is an answer, not an error."""
    from .entries import attributes_of, show_entry

    attributes = attributes_of(attr or [])  # a mistyped --attr: refused before any request
    found = _campaign(ctx, campaign_id)
    answer = server(ctx).call("POST", f"/api/campaigns/{segment(found)}/entries",
                              json={"key": target, "attributes": attributes})
    show_entry(found, answer, fmt)


@campaign.command("report")
def campaign_report(ctx: typer.Context, campaign_id: CampaignId, by: ReportPeriod = ReportBy.day,
                    since: ReportSince = None, until: ReportUntil = None, node: ReportNode = None,
                    fmt: Fmt = Format.table) -> None:
    """A campaign's counts over time on the server: runs that entered, completed and failed (or, with --node, that
    node's visits), messages sent and events received; the table adds each node's counts over the same time."""
    from .report import show_report

    found = server(ctx).call("GET", f"/api/campaigns/{segment(_campaign(ctx, campaign_id))}/report", params={
        "by": by.value, "since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
        "node": node})
    show_report(found, fmt)


# --- runs, events -----------------------------------------------------------------------------------------------


@group.command("runs")
def runs(
    ctx: typer.Context,
    campaign_id: CampaignId,
    status: RunStatus = None,
    search: RunSearch = None,
    node: RunNode = None,
    cycle: RunCycle = None,
    sort: RunSort = "id",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: RunOffset = 0,
    fmt: Fmt = Format.table,
) -> None:
    """List a campaign's runs on the server: filtered, searched and sorted there, a page at a time."""
    from .runs import RUN_COLUMNS

    found = server(ctx).call("GET", f"/api/campaigns/{segment(_campaign(ctx, campaign_id))}/runs", params={
        "status": status, "search": search, "node": node, "cycle": cycle, "sort": sort, "limit": limit,
        "offset": offset})
    render(rows_of(found, "runs"), RUN_COLUMNS, fmt, title=f"Runs of {campaign_id}")


@run_group.command("show")
def run_show(ctx: typer.Context, run_id: Annotated[int, typer.Argument(help="Run id.")], fmt: Fmt = Format.table) \
        -> None:
    """Show a run and its timeline: every executed node with outcome and edge, in order."""
    from .runs import render_timeline

    render_timeline(server(ctx).call("GET", f"/api/runs/{run_id}"), run_id, fmt)


@event.command("send")
def event_send(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    name: Annotated[str, typer.Argument(help="Event name, e.g. opened or approved.")],
    payload: Annotated[str, typer.Option(help="JSON object with the event's data.")] = "{}",
) -> None:
    """Record an event for a run on the server; a run waiting for it becomes due at once."""
    data = event_payload(payload)
    sent = server(ctx).call("POST", f"/api/runs/{run_id}/events", json={"name": name, "payload": data})
    info(f"event {sent['event_id']} ({name}) recorded for run {run_id}")


# --- the audit trail --------------------------------------------------------------------------------------------

Object = Annotated[str | None, typer.Option("--object", help="Object id or name.")]


def _audit_filters(audit_type: str | None, sub_type: str | None, user: str | None, obj: str | None,
                   since: datetime | None, until: datetime | None) -> dict[str, Any]:
    return {"type": audit_type, "sub_type": sub_type, "user": user, "object": obj,
            "since": since.isoformat() if since else None, "until": until.isoformat() if until else None}


@audit.callback()
def audit_list(
    ctx: typer.Context,
    audit_type: AuditTypeOption = None,
    sub_type: SubTypeOption = None,
    user: UserOption = None,
    obj: Object = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many records.")] = 100,
    every: Annotated[bool, typer.Option("--all", help="Every matching record, page after page.")] = False,
    fmt: Fmt = Format.table,
) -> None:
    """List the server's audit records, newest first (follows the API's pages: --all for every one)."""
    if ctx.invoked_subcommand is not None:
        return
    from .audit import TABLE_COLUMNS

    remote_ = server(ctx)
    params = _audit_filters(audit_type, sub_type, user, obj, since, until)
    records: list[dict[str, Any]] = []
    cursor = None
    while every or len(records) < limit:
        wanted = AUDIT_PAGE if every else min(AUDIT_PAGE, limit - len(records))
        page = remote_.call("GET", "/api/audit", params={**params, "limit": wanted, "cursor": cursor})
        records.extend(page["records"])
        cursor = page.get("next")
        if not cursor:
            break
    columns = TABLE_COLUMNS if fmt is Format.table or not records else list(records[0])
    render(records, columns, fmt, title="Audit trail")


@audit.command("export")
def audit_export(
    ctx: typer.Context,
    audit_type: AuditTypeOption = None,
    sub_type: SubTypeOption = None,
    user: UserOption = None,
    obj: Object = None,
    since: Since = None,
    until: Until = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", dir_okay=False, help="File; default stdout.")]
    = None,
) -> None:
    """Stream the server's matching audit records, oldest first, as CSV or JSON lines (audited there as a File
    Export). A download cut short leaves no file behind."""
    if fmt not in ("csv", "jsonl"):
        raise typer.BadParameter("csv or jsonl", param_hint="--format")
    remote_ = server(ctx)
    params = {**_audit_filters(audit_type, sub_type, user, obj, since, until), "format": fmt}
    if output is None:
        remote_.download("/api/audit/export", params, sys.stdout.buffer)
        sys.stdout.flush()
        return
    partial = output.with_name(f".{output.name}.part")
    try:
        with partial.open("wb") as handle:
            written = remote_.download("/api/audit/export", params, handle)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    info(f"exported the audit records to {output} ({written} bytes)")
