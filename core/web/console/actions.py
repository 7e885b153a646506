"""Launching, pausing, resuming and terminating a campaign from the console: operators and admins only, each behind
a confirmation page that says what will happen, posted as a same-origin form with the session's CSRF token, and done
through the same function as the API (campaigns/operations.py), audited as the signed-in person."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...accounts.roles import GRANTS, Access
from ...accounts.sessions import Session
from ...audit import Actor
from ...campaigns.operations import ACTIONS, operate
from ...campaigns.queries import campaign_summary
from ...campaigns.service import Campaigns
from ...errors import CampaignkitError, NotFound
from ..forms import FormRefused, own_form
from . import Console

CONSEQUENCES = {
    "launch": "Its audience is read now and every target gets a run; messages start going out at once.",
    "pause": "Its runs stop where they are (a message being sent finishes) until the campaign is resumed.",
    "resume": "Its parked runs go on where they stopped.",
    "terminate": "Every unfinished run ends now, as terminated. This cannot be undone.",
}


def may_operate(session: Session) -> bool:
    return Access.OPERATE in GRANTS[session.role]


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    @routes.get("/campaigns/{campaign_id}/confirm")
    def confirm(request: Request, campaign_id: str, action: str) -> Response:
        def render(session: Session) -> Response:
            if not may_operate(session):
                return console.render("message", 403, session=session,
                                      message=f"{session.role}s read campaigns; they do not change them")
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
        session = await run_in_threadpool(console.session, request)
        if session is None:
            return RedirectResponse("/sign-in", 303)
        if not may_operate(session):
            return console.render("message", 403, session=session,
                                  message=f"{session.role}s read campaigns; they do not change them")
        try:
            fields = await own_form(request, console.own_origin)
        except FormRefused as refused:
            return console.render("message", refused.status, session=session, message=str(refused))
        action = (fields.get("action") or [""])[0]
        if not session.csrf_matches((fields.get("csrf") or [""])[0]) or action not in ACTIONS:
            return console.render("message", 403, session=session,
                                  message="this form is out of date: reload the page and try again")
        actor = Actor(session.user_name, None, request.client.host if request.client else None)
        try:
            outcome: Any = await run_in_threadpool(operate, console.runtime, campaign_id, action, actor,
                                                   confirmed=True)
        except CampaignkitError as exc:
            return console.render("message", 409, session=session, message=str(exc))
        return RedirectResponse(f"/campaigns/{campaign_id}?done={outcome.action}", 303)

    return routes
