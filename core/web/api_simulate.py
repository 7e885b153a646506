"""The API's simulations: run one (a write token of an operator or admin: the gate in limits.py refuses the rest),
list and read the kept ones (any account), delete one (operator or admin). The console and the CLI call the same
functions (core/campaigns/simulations.py); an unknown campaign or simulation is a 404, an audience that cannot be
read a 400 (the app's handler of CampaignkitError)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ..audit import Actor
from ..campaigns.service import Campaigns
from ..campaigns.simulate import MAX_SAMPLE, SimulationOptions
from ..campaigns.simulations import delete_simulation, get_simulation, list_simulations, run_simulation
from ..runtime import Runtime
from .limits import client_ip


class SimulateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample: int | None = Field(default=None, ge=1, le=MAX_SAMPLE)  # a random sample of N targets; default: all
    fast_forward: bool = True  # jump over delays, windows and event timeouts; false: stop at each target's first wait


def api_simulate_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api/campaigns/{campaign_id}")

    def actor(request: Request) -> Actor:
        return Actor(request.state.principal.user_name, None, client_ip(request))

    @router.post("/simulate")
    def simulate(campaign_id: str, request: Request, body: SimulateRequest | None = None) -> dict[str, Any]:
        """Run the campaign against its audience (or a random ``sample``) with no side effect: nothing is sent, no
        access removed, no field set. The result (outcomes, counts per node and edge, example paths, rendered example
        messages, problems) is kept and returned with its ``id``; the simulation is audited."""
        body = body or SimulateRequest()
        return run_simulation(runtime, campaign_id, actor(request),
                              SimulationOptions(sample=body.sample, fast_forward=body.fast_forward))

    @router.get("/simulations")
    def simulations(campaign_id: str) -> list[dict[str, Any]]:
        """The campaign's kept simulations, newest first, without their results."""
        Campaigns(runtime).get(campaign_id)  # 404 for a campaign that does not exist
        return list_simulations(runtime, campaign_id)

    @router.get("/simulations/{simulation_id}")
    def simulation(campaign_id: str, simulation_id: int) -> dict[str, Any]:
        """A kept simulation with its result (``summary``)."""
        return get_simulation(runtime, campaign_id, simulation_id)

    @router.delete("/simulations/{simulation_id}")
    def delete(campaign_id: str, simulation_id: int, request: Request) -> dict[str, Any]:
        """Delete a kept simulation (audited)."""
        delete_simulation(runtime, campaign_id, simulation_id, actor(request))
        return {"deleted": simulation_id}

    return router
