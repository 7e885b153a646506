"""Simulations people run and keep: run one (simulate.py) and store its summary with its audit record in one
transaction, list them, read one, delete one (audited). The CLI, the API and the console call these."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select

from ..audit import Actor, AuditSubType, AuditType, record
from ..db import reading, writing
from ..db.schema import simulations
from ..errors import NotFound
from .launch import Progress
from .lifecycle import audit_object
from .simulate import SimulationOptions, simulate

if TYPE_CHECKING:
    from ..runtime import Runtime

LISTED = (simulations.c.id, simulations.c.campaign_id, simulations.c.version_id, simulations.c.created_at,
          simulations.c.created_by, simulations.c.targets, simulations.c.sample, simulations.c.fast_forward)


def run_simulation(runtime: Runtime, campaign_id: str, actor: Actor, options: SimulationOptions,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Simulate the campaign's current version, keep the summary and audit it; returns the kept simulation."""
    from .service import Campaigns

    service = Campaigns(runtime)
    campaign = service.get(campaign_id)
    definition, version_id, base_dir = service.definition(campaign_id)
    summary = simulate(runtime, definition, version_id, campaign_id, base_dir, options, progress)
    summary["campaign"] = {"id": campaign_id, "name": campaign["name"], "folder": campaign["folder"],
                           "kind": definition.kind, "version": definition.version}
    now = runtime.clock.now()
    row = {"campaign_id": campaign_id, "version_id": version_id, "created_at": now, "created_by": actor.user_name,
           "targets": summary["targets"], "sample": options.sample, "fast_forward": options.fast_forward,
           "summary": summary}
    with writing(runtime.engine) as conn:
        simulation_id = int(conn.execute(insert(simulations).values(row).returning(simulations.c.id)).scalar_one())
        record(conn, actor=actor, audit_type=AuditType.OPERATIONS, sub_type=AuditSubType.CAMPAIGN_SIMULATED, at=now,
               obj=audit_object(campaign_id, definition), code=run_simulation,
               details=_details(simulation_id, summary, options))
    return {"id": simulation_id, **row}


def _details(simulation_id: int, summary: dict[str, Any], options: SimulationOptions) -> str:
    audience = summary["audience"]
    scope = (f"a random sample of {summary['targets']} of {audience['targets']} target(s)" if options.sample
             else f"all {summary['targets']} target(s)")
    source = f" from {audience['file']}" if audience.get("file") else ""
    outcomes = ", ".join(f"{name} {count}" for name, count in summary["outcomes"].items())
    return (f"simulation {simulation_id}: {scope}{source}, fast-forward {'on' if options.fast_forward else 'off'}; "
            f"outcomes: {outcomes or 'none'}; nothing was sent or changed")


def list_simulations(runtime: Runtime, campaign_id: str) -> list[dict[str, Any]]:
    """The campaign's kept simulations, newest first, without their summaries."""
    with reading(runtime.engine) as conn:
        return [dict(row._mapping) for row in conn.execute(
            select(*LISTED).where(simulations.c.campaign_id == campaign_id).order_by(simulations.c.id.desc()))]


def get_simulation(runtime: Runtime, campaign_id: str, simulation_id: int) -> dict[str, Any]:
    with reading(runtime.engine) as conn:
        row = conn.execute(select(*LISTED, simulations.c.summary).where(
            simulations.c.id == simulation_id, simulations.c.campaign_id == campaign_id)).first()
    if row is None:
        raise NotFound(f"campaign {campaign_id} has no simulation {simulation_id}")
    return dict(row._mapping)


def delete_simulation(runtime: Runtime, campaign_id: str, simulation_id: int, actor: Actor) -> None:
    """Delete a kept simulation, audited in the same transaction."""
    from .service import Campaigns

    definition, _, _ = Campaigns(runtime).definition(campaign_id)
    now = runtime.clock.now()
    with writing(runtime.engine) as conn:
        gone = conn.execute(delete(simulations).where(
            simulations.c.id == simulation_id, simulations.c.campaign_id == campaign_id,
        ).returning(simulations.c.created_at, simulations.c.created_by, simulations.c.targets)).first()
        if gone is None:
            raise NotFound(f"campaign {campaign_id} has no simulation {simulation_id}")
        record(conn, actor=actor, audit_type=AuditType.OPERATIONS, sub_type=AuditSubType.SIMULATION_DELETED, at=now,
               obj=audit_object(campaign_id, definition), code=delete_simulation,
               details=f"simulation {simulation_id} of {_when(gone.created_at)} by {gone.created_by} "
                       f"({gone.targets} target(s)) deleted")


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
