"""The simulation's own console routes (through WebContext.console: the console's session, role check, same-origin
form and CSRF token): the results' CSV exports and the bounced mailboxes page for anyone signed in; resending,
clearing events and removing a bounced mailbox for operators and admins, each audited as the person. Resend and
clear ask for confirmation first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from campaignkit.core import Actor, CampaignkitError, ConsoleGate, ConsolePerson, NotFound, find_campaign
from campaignkit.core.errors import InvalidState
from campaignkit.core.web.forms import form_value

from .kind import NAME
from .mailboxes import COLUMNS, bounced_list
from .operations import clear_events, remove_bounced, resend
from .results import USER_COLUMNS, ResultsQuery, by_attack, by_group, by_user_all, csv_text
from .vocabulary import BY_ATTACK, BY_GROUP, BY_USER

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

MESSAGE_PAGE = "console/message.html"
CONFIRM_PAGE = "console/phishing/confirm.html"
BOUNCED_PAGE = "console/phishing/bounced.html"
ACTIONS = {"resend": "Resend the simulated email to", "clear": "Clear the campaign events of"}


def console_router(runtime: Runtime, console: ConsoleGate) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def refused(person: ConsolePerson, exc: CampaignkitError) -> Response:
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, InvalidState) else 400
        return console.render(person, MESSAGE_PAGE, status, message=str(exc))

    @router.get("/campaigns/{campaign_id}/results/export")
    def export(request: Request, campaign_id: str, by: Literal["user", "group", "attack"] = "user",
               delivery: str | None = None, event: str | None = None, group: str | None = None,
               attack: str | None = None, search: str | None = None,
               cycle: Annotated[int | None, Query()] = None, sort: str = "user") -> Response:
        """The results as CSV, as the tab filters them: every signed-in role may export what it may read."""
        def download(person: ConsolePerson) -> Response:
            try:
                found = find_campaign(runtime, campaign_id, kind=NAME).id
                if by == "user":
                    query = ResultsQuery(found, delivery=delivery, event=event, group=group, attack=attack,
                                         search=search, cycle=cycle, sort=sort.lstrip("-"),
                                         descending=sort.startswith("-"), limit=None)
                    query.check()
                    chunks = csv_text(USER_COLUMNS, by_user_all(runtime, query))
                else:
                    rows = by_group(runtime, found, cycle) if by == "group" else by_attack(runtime, found, cycle)
                    chunks = csv_text((BY_GROUP if by == "group" else BY_ATTACK).columns, rows)
            except CampaignkitError as exc:
                return refused(person, exc)
            return StreamingResponse(chunks, media_type="text/csv; charset=utf-8", headers={
                "Content-Disposition": f'attachment; filename="results-by-{by}-{found[:8]}.csv"'})

        return console.page(request, download)

    @router.post("/campaigns/{campaign_id}/results/selected")
    async def selected(request: Request, campaign_id: str) -> Response:
        posted = await console.posted(request)  # operators and admins; auditors get 403
        if isinstance(posted, Response):
            return posted
        person, fields = posted
        action, users = form_value(fields, "action"), [u for u in fields.get("user", []) if u.strip()]
        if action not in ACTIONS:
            return console.render(person, MESSAGE_PAGE, 400, message="action: resend or clear")
        if not users:
            return console.render(person, MESSAGE_PAGE, 400, message="select at least one user")
        try:
            campaign = await run_in_threadpool(find_campaign, runtime, campaign_id, kind=NAME)
        except CampaignkitError as exc:
            return refused(person, exc)
        if form_value(fields, "confirmed") != "yes":
            return console.render(person, CONFIRM_PAGE, campaign=campaign, action=action, what=ACTIONS[action],
                                  users=users, back=_back(campaign.id, ""))
        actor = Actor(person.user_name, None, person.client_ip)
        try:
            if action == "resend":
                done = await run_in_threadpool(resend, runtime, campaign.id, users, actor)
                message = f"Resending to {done['resent']} user(s)." + (
                    f" Skipped (not sent yet, or ended): {', '.join(done['skipped'][:20])}." if done["skipped"] else "")
            else:
                done = await run_in_threadpool(clear_events, runtime, campaign.id, users, actor)
                message = f"Cleared {done['events']} event(s) of {done['users']} user(s)."
        except CampaignkitError as exc:
            return refused(person, exc)
        return RedirectResponse(_back(campaign.id, message), 303)

    @router.get("/bounced-mailboxes")
    def bounced(request: Request, address: str | None = None, done: str | None = None) -> Response:
        def page(person: ConsolePerson) -> Response:
            return console.render(person, BOUNCED_PAGE, rows=bounced_list(runtime, 1000, address),
                                  columns=COLUMNS, address=address or "", done=done or "")

        return console.page(request, page)

    @router.post("/bounced-mailboxes/remove")
    async def unbounce(request: Request) -> Response:
        posted = await console.posted(request)
        if isinstance(posted, Response):
            return posted
        person, fields = posted
        address = form_value(fields, "address")
        try:
            await run_in_threadpool(remove_bounced, runtime, address, Actor(person.user_name, None, person.client_ip))
        except CampaignkitError as exc:
            return refused(person, exc)
        return RedirectResponse("/bounced-mailboxes?" + urlencode({"done": f"{address} removed"}), 303)

    return router


def _back(campaign_id: str, done: str) -> str:
    """The By User tab; after a change, scrolled to the notice saying what was done (it sits below the map)."""
    query = urlencode({"tab": BY_USER.title, **({"done": done} if done else {})})
    return f"/campaigns/{campaign_id}?{query}" + ("#results-done" if done else "")
