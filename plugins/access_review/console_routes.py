"""The Run History tab's own console routes (through WebContext.console: the console's session, role check,
same-origin form and CSRF token): the filtered history as a CSV download, for anyone signed in, and retrying the
failed enforcement of a cycle, for operators and admins, behind a confirmation page and audited as the person."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from campaignkit.core import Actor, CampaignkitError, ConsoleGate, ConsolePerson, NotFound, find_campaign, latest_cycle
from campaignkit.core.errors import InvalidState
from campaignkit.core.web.forms import form_value

from .export import HistoryFilters, csv_download
from .kind import NAME
from .operations import failed_enforcements, retry_enforcement
from .vocabulary import HISTORY

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

RETRY_PAGE = "console/access_review/retry_enforcement.html"
MESSAGE_PAGE = "console/message.html"


def console_router(runtime: Runtime, console: ConsoleGate) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def refused(person: ConsolePerson, exc: CampaignkitError) -> Response:
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, InvalidState) else 400
        return console.render(person, MESSAGE_PAGE, status, message=str(exc))

    @router.get("/campaigns/{campaign_id}/history/export")
    def export(
        request: Request,
        campaign_id: str,
        filters: Annotated[HistoryFilters, Depends()],
        fmt: Annotated[str, Query(alias="format", max_length=10)] = "csv",
    ) -> Response:
        """The filtered Run History as CSV: every signed-in role may export it, as every role may read it."""
        def download(person: ConsolePerson) -> Response:
            if fmt != "csv":
                return console.render(person, MESSAGE_PAGE, 400, message="format: csv")
            try:
                found = find_campaign(runtime, campaign_id, kind=NAME).id
                return csv_download(runtime, filters.query(found))
            except CampaignkitError as exc:
                return refused(person, exc)

        return console.page(request, download)

    @router.get("/campaigns/{campaign_id}/retry-enforcement")
    def confirm_retry(request: Request, campaign_id: str, cycle: int | None = None) -> Response:
        def confirm(person: ConsolePerson) -> Response:
            try:
                campaign = find_campaign(runtime, campaign_id, kind=NAME)
                chosen = cycle if cycle is not None else latest_cycle(runtime, campaign.id)
                count = failed_enforcements(runtime, campaign.id, chosen) if chosen is not None else 0
            except CampaignkitError as exc:
                return refused(person, exc)
            return console.render(person, RETRY_PAGE, campaign=campaign, cycle=chosen, count=count,
                                  back=_back(campaign.id, {}))

        return console.page(request, confirm, operate=True)

    @router.post("/campaigns/{campaign_id}/retry-enforcement")
    async def retry(request: Request, campaign_id: str) -> Response:
        posted = await console.posted(request)  # operators and admins; auditors get 403
        if isinstance(posted, Response):
            return posted
        person, fields = posted
        chosen = form_value(fields, "cycle")
        if not chosen.isdigit():
            return console.render(person, MESSAGE_PAGE, 400, message="cycle: the launch (cycle) id, a whole number")
        actor = Actor(person.user_name, None, person.client_ip)
        try:
            retried = await run_in_threadpool(retry_enforcement, runtime, campaign_id, actor, cycle=int(chosen))
        except CampaignkitError as exc:
            return refused(person, exc)
        return RedirectResponse(_back(campaign_id, {"cycle": chosen, "retried": retried}), 303)

    return router


def _back(campaign_id: str, params: Mapping[str, Any]) -> str:
    return f"/campaigns/{campaign_id}?" + urlencode({"tab": HISTORY.title, **params})
