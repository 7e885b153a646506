"""Simulating a campaign from the console: the campaign page's Simulate form (operators and admins, a same-origin
form with the session's CSRF token), the kept simulations of a campaign, one simulation's result (the workflow map
with its counts, example paths, the messages it would have sent in a sandboxed frame) and its deletion; through the
same functions as the CLI and the API (campaigns/simulations.py), audited as the signed-in person."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...accounts.sessions import Session
from ...campaigns.counts import NodeCounts
from ...campaigns.queries import campaign_summary, version_workflow
from ...campaigns.simulate import MAX_SAMPLE, SimulationOptions
from ...campaigns.simulations import delete_simulation, get_simulation, list_simulations, run_simulation
from ...errors import CampaignkitError, InvalidState, NotFound
from ..forms import form_value
from . import Console
from .actions import may_operate, operator_refusal
from .workflow_map import draw

# How each outcome reads on the page; "waiting" is also what the map's node counts call waiting.
OUTCOMES = {"completed": "completed", "waiting": "waiting", "terminated": "ended at the deadline",
            "failed": "failed", "not_simulated": "not simulated", "looping": "stopped in a loop"}
# What the side effects it did not carry out were, by step type (a plugin's: "<type> not run").
EFFECTS = {"send_message": "messages not sent", "update_custom_field": "fields not set",
           "enforcement_action": "accesses not removed", "send_event": "events not emitted"}


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    def refused(session: Session, exc: CampaignkitError) -> Response:
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, InvalidState) else 400
        return console.render("message", status, session=session, message=str(exc))

    @routes.post("/campaigns/{campaign_id}/simulate")
    async def simulate(request: Request, campaign_id: str) -> Response:
        posted = await console.posted(request, operator_refusal)
        if isinstance(posted, Response):
            return posted
        session, fields = posted
        written = form_value(fields, "sample").strip()
        if written and not (written.isdigit() and 1 <= int(written) <= MAX_SAMPLE):
            return console.render("message", 400, session=session,
                                  message=f"sample: a number of targets from 1 to {MAX_SAMPLE}, not {written[:20]!r}")
        options = SimulationOptions(sample=int(written) if written else None,
                                    fast_forward=form_value(fields, "fast_forward") == "on")
        try:
            kept = await run_in_threadpool(partial(run_simulation, console.runtime, campaign_id,
                                                   console.actor(session, request), options))
        except CampaignkitError as exc:
            return refused(session, exc)
        return RedirectResponse(f"/campaigns/{campaign_id}/simulations/{kept['id']}", 303)

    @routes.get("/campaigns/{campaign_id}/simulations")
    def simulations(request: Request, campaign_id: str, deleted: str = "") -> Response:
        def render(session: Session) -> Response:
            try:
                summary = campaign_summary(console.runtime, campaign_id)
            except CampaignkitError as exc:
                return refused(session, exc)
            return console.render("simulations", session=session, campaign=summary, may_simulate=may_operate(session),
                                  simulations=list_simulations(console.runtime, campaign_id),
                                  deleted=deleted[:20] if deleted.isdigit() else None)

        return console.page(request, render)

    @routes.get("/campaigns/{campaign_id}/simulations/{simulation_id}")
    def simulation(request: Request, campaign_id: str, simulation_id: str) -> Response:  # checked after the session
        def render(session: Session) -> Response:
            try:
                kept = get_simulation(console.runtime, campaign_id, _number(simulation_id))
                summary = campaign_summary(console.runtime, campaign_id)
            except CampaignkitError as exc:
                return refused(session, exc)
            result = kept["summary"]
            counts = {n["id"]: NodeCounts(n["entered"], dict(n["ended"]), dict(n["left"])) for n in result["nodes"]}
            drawn = draw(version_workflow(console.runtime, kept["version_id"]),
                         (node for node, c in counts.items() if c.entered),
                         ((node, edge) for node, c in counts.items() for edge in c.left))
            return console.render("simulation", session=session, campaign=summary, kept=kept, result=result,
                                  map=drawn, counts=counts, outcomes=OUTCOMES, effects=EFFECTS,
                                  may_simulate=may_operate(session))

        return console.page(request, render)

    @routes.post("/campaigns/{campaign_id}/simulations/{simulation_id}/delete")
    async def delete(request: Request, campaign_id: str, simulation_id: str) -> Response:
        posted = await console.posted(request, operator_refusal)
        if isinstance(posted, Response):
            return posted
        session, _ = posted
        try:
            await run_in_threadpool(partial(delete_simulation, console.runtime, campaign_id, _number(simulation_id),
                                            console.actor(session, request)))
        except CampaignkitError as exc:
            return refused(session, exc)
        return RedirectResponse(f"/campaigns/{campaign_id}/simulations?deleted={_number(simulation_id)}", 303)

    return routes


def _number(simulation_id: str) -> int:
    if not simulation_id.isdigit() or len(simulation_id) > 18:
        raise NotFound(f"no simulation {simulation_id[:20]!r}")
    return int(simulation_id)
