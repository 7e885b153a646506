"""Launching, pausing, resuming and terminating a campaign from the console: operators and admins only, each behind
a confirmation page that says what will happen, posted as a same-origin form with the session's CSRF token, and done
through the same function as the API (campaigns/operations.py), audited as the signed-in person."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...accounts.roles import GRANTS, Access
from ...accounts.sessions import Session
from ...campaigns.operations import ACTIONS, operate
from ...campaigns.queries import campaign_summary
from ...campaigns.service import Campaigns
from ...errors import CampaignkitError, NotFound
from ..forms import form_value
from . import Console

CONSEQUENCES = {
    "launch": "Its audience is read now and every target gets a run; messages start going out at once.",
    "pause": "Its runs stop where they are (a message being sent finishes) until the campaign is resumed.",
    "resume": "Its parked runs go on where they stopped.",
    "terminate": "Every unfinished run ends now, as terminated. This cannot be undone.",
}


def may_operate(session: Session) -> bool:
    return Access.OPERATE in GRANTS[session.role]


def operator_refusal(session: Session) -> str | None:
    return None if may_operate(session) else f"{session.role}s read campaigns; they do not change them"


def _utc(moment: datetime) -> datetime:
    """A time from the form: the browser's datetime-local has no zone, and the page asks for UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    @routes.get("/campaigns/{campaign_id}/confirm")
    def confirm(request: Request, campaign_id: str, action: str = "") -> Response:  # checked after the session
        def render(session: Session) -> Response:
            refusal = operator_refusal(session)
            if refusal is not None:
                return console.render("message", 403, session=session, message=refusal)
            if action not in ACTIONS:
                return console.render("message", 404, session=session, message=f"no action {action[:40]!r}")
            try:
                summary = campaign_summary(console.runtime, campaign_id)
                question = Campaigns(console.runtime).launch_question(campaign_id) if action == "launch" else None
            except NotFound as exc:
                return console.render("message", 404, session=session, message=str(exc))
            except CampaignkitError as exc:  # the audience cannot be read: say so before anything is tried
                return console.render("message", 409, session=session, message=str(exc))
            return console.render("confirm", session=session, campaign=summary, action=action,
                                  consequence=CONSEQUENCES[action], question=question)

        return console.page(request, render)

    @routes.post("/campaigns/{campaign_id}/actions")
    async def act(request: Request, campaign_id: str) -> Response:
        posted = await console.posted(request, operator_refusal)
        if isinstance(posted, Response):
            return posted
        session, fields = posted
        action = form_value(fields, "action")
        if action not in ACTIONS:
            return console.render("message", 404, session=session, message=f"no action {action[:40]!r}")
        written = form_value(fields, "at").strip() if action == "launch" else ""
        try:
            at = _utc(datetime.fromisoformat(written)) if written else None
        except ValueError:
            return console.render("message", 400, session=session,
                                  message=f"at: {written[:40]!r} is not a time (YYYY-MM-DD HH:MM, UTC); nothing was "
                                          "launched")
        actor = console.actor(session, request)
        try:
            outcome: Any = await run_in_threadpool(partial(operate, console.runtime, campaign_id, action, actor,
                                                           at=at, confirmed=True))
        except CampaignkitError as exc:
            return console.render("message", 409, session=session, message=str(exc))
        return RedirectResponse(f"/campaigns/{campaign_id}?done={'scheduled' if at else outcome.action}", 303)

    return routes
