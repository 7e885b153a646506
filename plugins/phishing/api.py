"""The simulation's JSON API (behind the API's bearer token, like every /api route: reading for any account; the
changes for a write token of an operator or an admin): results, their CSV export, resend, clear events, and the
bounced mailboxes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from campaignkit.core import Actor, find_campaign

from .kind import NAME
from .mailboxes import bounced_list
from .operations import clear_events, remove_bounced, resend
from .results import USER_COLUMNS, ResultsQuery, by_attack, by_group, by_user, by_user_all, csv_text
from .vocabulary import BY_ATTACK, BY_GROUP

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

By = Literal["user", "group", "attack"]


class Selection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[str] = Field(min_length=1, max_length=100_000, description="The users' addresses (their keys).")


def _actor(request: Request) -> Actor:
    return Actor(request.state.principal.user_name, None, request.client.host if request.client else None)


def api_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()

    def query(campaign_id: str, delivery: str | None, event: str | None, group: str | None, attack: str | None,
              search: str | None, cycle: int | None, sort: str, limit: int | None, offset: int) -> ResultsQuery:
        found = find_campaign(runtime, campaign_id, kind=NAME).id
        return ResultsQuery(found, delivery=delivery, event=event, group=group, attack=attack, search=search,
                            cycle=cycle, sort=sort.lstrip("-"), descending=sort.startswith("-"), limit=limit,
                            offset=offset)

    @router.get("/api/campaigns/{campaign_id}/results")
    def results(
        campaign_id: str, by: By = "user", delivery: str | None = None, event: str | None = None,
        group: str | None = None, attack: str | None = None, search: str | None = None, cycle: int | None = None,
        sort: str = "user", limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """A simulation's results By User (a page of users, each event's time), By Group or By Attack (how many
        users reached each event)."""
        if by == "user":
            rows = by_user(runtime, query(campaign_id, delivery, event, group, attack, search, cycle, sort, limit,
                                          offset))
            return {"by": by, "columns": list(USER_COLUMNS), "rows": rows}
        found = find_campaign(runtime, campaign_id, kind=NAME).id
        listing = BY_GROUP if by == "group" else BY_ATTACK
        rows = by_group(runtime, found, cycle) if by == "group" else by_attack(runtime, found, cycle)
        return {"by": by, "columns": list(listing.columns), "rows": rows}

    @router.get("/api/campaigns/{campaign_id}/results/export")
    def export(
        campaign_id: str, by: By = "user", delivery: str | None = None, event: str | None = None,
        group: str | None = None, attack: str | None = None, search: str | None = None, cycle: int | None = None,
        sort: str = "user", fmt: Annotated[Literal["csv"], Query(alias="format")] = "csv",
    ) -> StreamingResponse:
        """Every row of the results as CSV (what `campaignkit phishing results --format csv` writes), streamed."""
        if by == "user":
            chosen = query(campaign_id, delivery, event, group, attack, search, cycle, sort, None, 0)
            chosen.check()
            chunks = csv_text(USER_COLUMNS, by_user_all(runtime, chosen))
        else:
            found = find_campaign(runtime, campaign_id, kind=NAME).id
            rows = by_group(runtime, found, cycle) if by == "group" else by_attack(runtime, found, cycle)
            chunks = csv_text((BY_GROUP if by == "group" else BY_ATTACK).columns, rows)
        name = f"results-by-{by}-{campaign_id[:8]}.csv"
        return StreamingResponse(chunks, media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @router.post("/api/campaigns/{campaign_id}/resend")
    async def resend_to(campaign_id: str, body: Selection, request: Request) -> dict[str, Any]:
        """Send the simulated email again to the selected users (audited)."""
        return await run_in_threadpool(resend, runtime, campaign_id, body.users, _actor(request))

    @router.post("/api/campaigns/{campaign_id}/clear-events")
    async def clear(campaign_id: str, body: Selection, request: Request) -> dict[str, Any]:
        """Clear the campaign events of the selected users, all but Email sent and its delivery status (audited)."""
        return await run_in_threadpool(clear_events, runtime, campaign_id, body.users, _actor(request))

    @router.get("/api/bounced-mailboxes")
    def bounced(limit: Annotated[int, Query(ge=1, le=10000)] = 1000, address: str | None = None) -> dict[str, Any]:
        """Addresses later campaigns skip (Blocklisted), newest bounce first; ``address``: those starting so."""
        return {"rows": bounced_list(runtime, limit, address)}

    @router.delete("/api/bounced-mailboxes/{address}")
    async def unbounce(address: str, request: Request) -> dict[str, Any]:
        """Take an address off the bounced mailboxes (audited)."""
        await run_in_threadpool(remove_bounced, runtime, address, _actor(request))
        return {"removed": address.strip().lower()}

    return router
