"""The phishing simulation's commands, under `campaignkit phishing`: results By User, By Group and By Attack;
resend and clear events for selected users; the bounced mailboxes; reading notifications and reports in."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from campaignkit.core.cli.output import Format, info, render, render_json

Ref = Annotated[str, typer.Argument(help="Campaign id, unique id prefix, or name.")]
Users = Annotated[list[str] | None, typer.Option("--user", help="A user's address (repeat the option).")]
UsersFile = Annotated[Path | None, typer.Option("--users-file", help="A file with one address per line.")]
Cycle = Annotated[int | None, typer.Option(help="Only this launch (cycle) id.")]
FormatOption = Annotated[Format, typer.Option("--format")]


def commands() -> typer.Typer:
    group = typer.Typer(help="Phishing simulations: results, resend, clear events, bounced mailboxes.",
                        no_args_is_help=True)
    group.command()(results)
    group.command()(resend)
    group.command("clear-events")(clear_events)
    group.command()(bounced)
    group.command("unbounce")(unbounce)
    group.command()(ingest)
    group.command()(listen)
    return group


def results(
    ctx: typer.Context,
    campaign: Ref,
    by: Annotated[str, typer.Option(help="user, group or attack")] = "user",
    delivery: Annotated[str | None, typer.Option(help="Pending, Delivered, Failed, Blocklisted or Not sent")] = None,
    event: Annotated[str | None, typer.Option(help="Only users who reached this event, e.g. 'Clicked link'")] = None,
    group: Annotated[str | None, typer.Option(help="Only users in this group")] = None,
    attack: Annotated[str | None, typer.Option(help="Only users sent this attack")] = None,
    search: Annotated[str | None, typer.Option(help="Users whose address starts with this")] = None,
    cycle: Cycle = None,
    sort: Annotated[str, typer.Option(help="user, email, attack, delivery, sent, opened, clicked, submitted or "
                                           "reported; - reverses")] = "user",
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    fmt: FormatOption = Format.table,
) -> None:
    """A simulation's results: each user's events (--by user), or how many users reached each (group, attack)."""
    from campaignkit.core import CampaignkitError, find_campaign

    from .kind import NAME
    from .results import USER_COLUMNS, ResultsQuery, by_attack, by_group, by_user, by_user_all, csv_text
    from .vocabulary import BY_ATTACK, BY_GROUP

    runtime = ctx.obj()
    campaign_id = find_campaign(runtime, campaign, kind=NAME).id
    if by in ("group", "attack"):
        rows = by_group(runtime, campaign_id, cycle) if by == "group" else by_attack(runtime, campaign_id, cycle)
        columns = (BY_GROUP if by == "group" else BY_ATTACK).columns
        if fmt is Format.csv:
            sys.stdout.writelines(csv_text(columns, rows))
        else:
            render(rows, columns, fmt, title=f"Results of {campaign} by {by}")
        return
    if by != "user":
        raise CampaignkitError("--by: user, group or attack")
    query = ResultsQuery(campaign_id, delivery=delivery, event=event, group=group, attack=attack, search=search,
                         cycle=cycle, sort=sort.lstrip("-"), descending=sort.startswith("-"), limit=limit,
                         offset=offset)
    if fmt is Format.csv:  # every row the filters select, like the console's and the API's exports
        sys.stdout.writelines(csv_text(USER_COLUMNS, by_user_all(runtime, query)))
        return
    rows = by_user(runtime, query)
    if fmt is Format.json:
        render_json([{column: row[column] for column in USER_COLUMNS} for row in rows])
        return
    render(rows, ["User", "Email", "Attack", "Email sent", "Delivery Status", "Email opened", "Reported Email",
                  "Clicked link", "Entered Credentials", "Finished training"], fmt, title=f"Results of {campaign}")


def _users(users: list[str] | None, users_file: Path | None) -> list[str]:
    from campaignkit.core import CampaignkitError

    chosen = list(users or [])
    if users_file is not None:
        try:
            chosen += [line.strip() for line in users_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise CampaignkitError(f"{users_file}: {exc.strerror or exc}") from None
    if not chosen:
        raise CampaignkitError("name the users: --user ADDRESS (repeatable) or --users-file FILE")
    return chosen


def resend(ctx: typer.Context, campaign: Ref, user: Users = None, users_file: UsersFile = None) -> None:
    """Send the simulated email again to selected users (a new attempt; bounced addresses are tried again)."""
    from campaignkit.core import Actor

    from .operations import resend as resend_to

    done = resend_to(ctx.obj(), campaign, _users(user, users_file), Actor.local_user())
    info(f"resending to {done['resent']} user(s); the workers send them now"
         + (f"; skipped (not sent yet, or ended): {', '.join(done['skipped'])}" if done["skipped"] else ""))


def clear_events(
    ctx: typer.Context, campaign: Ref, user: Users = None, users_file: UsersFile = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Clear the campaign events of selected users (all but Email sent and its delivery status; audited)."""
    from campaignkit.core import Actor

    from .operations import clear_events as clear

    chosen = _users(user, users_file)
    if not yes and not typer.confirm(f"clear the events of {len(chosen)} user(s)?"):
        raise typer.Exit(1)
    done = clear(ctx.obj(), campaign, chosen, Actor.local_user())
    info(f"cleared {done['events']} event(s) of {done['users']} user(s)")


def bounced(ctx: typer.Context, fmt: FormatOption = Format.table,
            limit: Annotated[int, typer.Option(min=1, max=100_000)] = 1000) -> None:
    """The bounced mailboxes: addresses later campaigns skip (Blocklisted) until removed or delivered again."""
    from .mailboxes import COLUMNS, bounced_list

    render(bounced_list(ctx.obj(), limit), COLUMNS, fmt, title="Bounced mailboxes")


def unbounce(ctx: typer.Context, address: Annotated[str, typer.Argument(help="The address to remove.")]) -> None:
    """Remove an address from the bounced mailboxes (audited): later campaigns send to it again."""
    from campaignkit.core import Actor

    from .operations import remove_bounced

    remove_bounced(ctx.obj(), address, Actor.local_user())
    info(f"{address.strip().lower()} removed from the bounced mailboxes")


def ingest(
    ctx: typer.Context,
    files: Annotated[list[Path] | None, typer.Argument(help="Message files (.eml); none: read the configured "
                                                          "mailbox once.")] = None,
) -> None:
    """Apply delivery status notifications and reported emails: from .eml files, or the configured IMAP mailbox."""
    from campaignkit.core import CampaignkitError

    from .mailboxes import drain_configured
    from .notifications import Ingested, ingest_message

    runtime = ctx.obj()
    total = Ingested()
    if files:
        for path in files:
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise CampaignkitError(f"{path}: {exc.strerror or exc}") from None
            total.add(ingest_message(runtime, raw))
    else:
        total = drain_configured(runtime)
    info(f"notifications and reports: {total.summary()}")


def listen(
    ctx: typer.Context,
    domain: Annotated[list[str], typer.Option("--domain", help="Accept mail for this domain (repeatable): the "
                                                               "return_path's and the report address's.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 2525,
) -> None:
    """Receive delivery status notifications and reported emails over SMTP (docs/phishing-mail.md), until stopped.
    Each message is applied before the sending server gets its 250."""
    import threading

    from .config import PhishingConfig
    from .mailbox import InboundSmtp
    from .notifications import ingest_message

    runtime = ctx.obj()
    config: PhishingConfig = runtime.kind("phishing").config
    domains = {d.strip().lower().lstrip("@") for d in domain if d.strip()}

    def accept(address: str) -> bool:
        return address.rpartition("@")[2].strip(">").lower() in domains

    def handle(raw: bytes) -> None:
        ingest_message(runtime, raw, prefix=config.verp_prefix)

    with InboundSmtp(handle, accept, host=host, port=port) as server:
        info(f"listening for notifications and reports on {server.host}:{server.port} for "
             f"{', '.join(sorted(domains))}; Ctrl-C stops")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            info("stopped")
