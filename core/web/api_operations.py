"""The API's views of the installation: the schedule (any account) and the plugins with their settings masked (admins
only). The console's Schedule and Plugins pages show the same, from the same functions. And repairing stuck runs
(operators and admins), as `campaignkit runs repair` does."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from ..accounts.roles import GRANTS, Access, Principal
from ..audit import Actor
from ..campaigns import Campaigns
from ..campaigns.repair import repair as run_repair
from ..errors import NotFound
from ..plugins.listing import plugins_overview
from ..runtime import Runtime
from ..scheduling.upcoming import schedule_overview
from .console.api_docs import NEEDS
from .limits import client_ip


def administrator(request: Request) -> Principal:
    """The token's account when its role administers the installation; 403 for any other.

    The gate (limits.py) has let every account's token through to a GET. Plugin settings are an admin's to read,
    with either of an admin's tokens: a read token narrows what it may change, and reading changes nothing."""
    principal: Principal = request.state.principal
    if Access.ADMINISTER not in GRANTS[principal.role]:
        raise HTTPException(403, f"{principal.user_name} ({principal.role}) may not read the plugins' settings: "
                                 "admins only")
    return principal


class RepairRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = False  # say what would be done, change nothing
    campaign: str | None = None  # only this campaign: its id, a unique id prefix, or its name


def api_operations_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api")

    @router.get("/schedule")
    def schedule() -> dict[str, Any]:
        """Scheduled launches, the next cycle of each recurring campaign and open cycles' deadlines, by time, and the
        jobs the scheduler has registered."""
        return schedule_overview(runtime)

    @router.get("/plugins", dependencies=[Depends(administrator)], openapi_extra={NEEDS: "a token of an admin"})
    def plugins() -> dict[str, Any]:
        """The hook specs, the loaded plugins and what each provides, the blocked ones, and each component's
        settings with every secret masked (admins only)."""
        return plugins_overview(runtime)

    @router.post("/operations/repair")
    def repair(request: Request, body: RepairRequest | None = None) -> dict[str, Any]:
        """Find runs that cannot progress and fix them (or, with dry_run, only say what would be done): the
        findings, each with what it means, what repair does about it and, unless a dry run, what it did."""
        body = body or RepairRequest()
        try:
            campaign_id = Campaigns(runtime).resolve(body.campaign) if body.campaign is not None else None
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        principal = request.state.principal
        actor = Actor(principal.user_name, None, client_ip(request))
        return run_repair(runtime, actor, campaign_id=campaign_id, dry_run=body.dry_run).as_dict()

    return router
