"""A campaign from a definition pasted or uploaded in the console (/campaigns/new), or a new version of one ("Edit
definition"): operators and admins only, saved through the same function as the API (campaigns/editing.py) and
audited as the signed-in person. A refused definition comes back in the form as it was sent, with its problems by
line, column and node, and its lines numbered with the ones in question marked."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...accounts.sessions import Session
from ...campaigns.editing import DefinitionText, current_definition, save_definition
from ...definitions.problems import Problem, problems_of
from ...definitions.remote import sent_name
from ...errors import CampaignkitError, DefinitionError, NotFound
from ..forms import form_value
from . import Console
from .actions import operator_refusal

PASTED = "<pasted>"


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    @routes.get("/campaigns/new")
    def new(request: Request) -> Response:
        def render(session: Session) -> Response:
            refusal = operator_refusal(session)
            if refusal is not None:
                return console.render("message", 403, session=session, message=refusal)
            return _form(console, session, None, "")

        return console.page(request, render)

    @routes.post("/campaigns/new")
    async def create(request: Request) -> Response:
        return await _save(console, request, None)

    @routes.get("/campaigns/{campaign_id}/definition")
    def edit(request: Request, campaign_id: str) -> Response:
        def render(session: Session) -> Response:
            refusal = operator_refusal(session)
            if refusal is not None:
                return console.render("message", 403, session=session, message=refusal)
            try:
                current = current_definition(console.runtime, campaign_id)
            except NotFound as exc:
                return console.render("message", 404, session=session, message=str(exc))
            return _form(console, session, current, current.text)

        return console.page(request, render)

    @routes.post("/campaigns/{campaign_id}/definition")
    async def update(request: Request, campaign_id: str) -> Response:
        return await _save(console, request, campaign_id)

    return routes


async def _save(console: Console, request: Request, campaign_id: str | None) -> Response:
    posted = await console.posted_upload(request, operator_refusal)
    if isinstance(posted, Response):
        return posted
    session, fields, uploads = posted
    current: DefinitionText | None = None
    if campaign_id is not None:
        try:
            current = await run_in_threadpool(current_definition, console.runtime, campaign_id)
        except NotFound as exc:
            return console.render("message", 404, session=session, message=str(exc))
    upload = uploads.get("file")
    body: str | bytes
    if upload is not None and (upload.filename or upload.data):  # a file chosen is what is saved
        body, name = upload.data, sent_name(upload.filename, PASTED)
        text = upload.data.decode("utf-8", "replace").replace("\0", "\ufffd")
    else:
        # Browsers send a textarea's lines ending in CR LF: keep the lines as they were written.
        body = text = form_value(fields, "text").replace("\r\n", "\n")
        name = PASTED
    try:
        saved = await run_in_threadpool(save_definition, console.runtime, body, name, console.actor(session, request),
                                        campaign_id)
    except DefinitionError as exc:
        return _form(console, session, current, text, problems_of(exc, name), status=422)
    except NotFound as exc:
        return console.render("message", 404, session=session, message=str(exc))
    except CampaignkitError as exc:  # a name another campaign has, a terminated campaign
        return _form(console, session, current, text, refusal=str(exc), status=409)
    return RedirectResponse(f"/campaigns/{saved.campaign_id}?done={'created' if saved.created else 'edited'}", 303)


def _form(console: Console, session: Session, current: DefinitionText | None, text: str,
          problems: list[Problem] | None = None, *, refusal: str | None = None, status: int = 200) -> Response:
    problems = problems or []
    variables: dict[str, Any] = {
        "session": session, "campaign": current, "text": text, "problems": problems, "refusal": refusal,
        "action": f"/campaigns/{current.campaign_id}/definition" if current else "/campaigns/new",
        # The lines, numbered, with the ones a problem names marked: a textarea cannot show where line 37 is.
        "lines": text.splitlines() if problems else [],
        "marked": {problem.line for problem in problems if problem.line is not None},
    }
    return console.render("definition_form", status, **variables)
