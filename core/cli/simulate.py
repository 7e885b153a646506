"""campaign simulate / simulations / simulation / delete-simulation: run a campaign with no side effect, and the
simulations kept (core/campaigns/simulations.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import CampaignkitError
from .output import Format, info, progress, render, render_json
from .state import STATE, actor

Ref = Annotated[str, typer.Argument(help="Campaign id, unique id prefix, or name.")]
SimulationId = Annotated[int, typer.Argument(help="The simulation's id (see `campaign simulations`).", min=1)]
SHOWN_TEXT = 300  # characters of a message's text in the table form (json gives all of it)


def register(group: typer.Typer) -> None:
    group.command()(simulate)
    group.command()(simulations)
    group.command()(simulation)
    group.command("delete-simulation")(delete_simulation)


def _campaign(ref: str) -> str:
    from ..campaigns import Campaigns

    return Campaigns(STATE.runtime()).resolve(ref)


def simulate(
    ref: Ref,
    audience: Annotated[Path | None, typer.Option("--audience", help="CSV file instead of the definition's audience.",
                                                  dir_okay=False)] = None,
    sample: Annotated[int | None, typer.Option("--sample", help="Simulate a random sample of N distinct targets.",
                                               metavar="N", min=1)] = None,
    fast_forward: Annotated[bool, typer.Option("--fast-forward/--no-fast-forward", help="Jump over delays, windows "
                                               "and event timeouts (default); without it each target stops at its "
                                               "first wait.")] = True,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Run the campaign against its audience with no side effect (nothing sent, no access removed, no field set) and
    show where each target would go; the result is kept until deleted, and the simulation is audited."""
    from rich.progress import MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..campaigns.simulate import SimulationOptions
    from ..campaigns.simulations import run_simulation

    if fmt is Format.csv:
        raise CampaignkitError("--format: a simulation is shown as a table or as json")
    options = SimulationOptions(sample=sample, fast_forward=fast_forward, audience=audience)
    campaign_id = _campaign(ref)
    with progress(SpinnerColumn(), TextColumn("{task.description}"), MofNCompleteColumn(),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task("simulating", total=None)
        kept = run_simulation(STATE.runtime(), campaign_id, actor(), options,
                              lambda count: bar.update(task, completed=count))
    show(kept, fmt)


def simulations(ref: Ref, fmt: Annotated[Format, typer.Option("--format")] = Format.table) -> None:
    """List a campaign's kept simulations, newest first."""
    from ..campaigns.simulations import list_simulations

    rows = list_simulations(STATE.runtime(), _campaign(ref))
    render(rows, ["id", "created_at", "created_by", "targets", "sample", "fast_forward", "version_id"], fmt,
           title="Simulations")


def simulation(ref: Ref, simulation_id: SimulationId,
               fmt: Annotated[Format, typer.Option("--format")] = Format.table) -> None:
    """Show a kept simulation: outcomes, counts per node and edge, example paths, messages, problems."""
    from ..campaigns.simulations import get_simulation

    if fmt is Format.csv:
        raise CampaignkitError("--format: a simulation is shown as a table or as json")
    show(get_simulation(STATE.runtime(), _campaign(ref), simulation_id), fmt)


def delete_simulation(ref: Ref, simulation_id: SimulationId) -> None:
    """Delete a kept simulation (audited)."""
    from ..campaigns.simulations import delete_simulation as delete

    campaign_id = _campaign(ref)
    delete(STATE.runtime(), campaign_id, simulation_id, actor())
    info(f"deleted simulation {simulation_id} of campaign {campaign_id}")


def show(kept: dict[str, Any], fmt: Format) -> None:
    if fmt is Format.json:
        render_json(kept)
        return
    s = kept["summary"]
    audience = s["audience"]
    scope = (f"a random sample of {s['targets']} of {audience['targets']} target(s)" if kept["sample"]
             else f"all {s['targets']} target(s)")
    info(f"simulation {kept['id']} of {s['campaign']['name']!r} (version {s['campaign']['version']}): {scope}, "
         f"fast-forward {'on' if kept['fast_forward'] else 'off'}, from {_time(s['started_at'])} to "
         f"{_time(s['last_at'] or s['started_at'])}; nothing was sent or changed")
    if audience["duplicates"]:
        info(f"{audience['duplicates']} duplicate row(s) merged by key ({audience['rows']} row(s) read)")
    render([{"outcome": name, "targets": count} for name, count in s["outcomes"].items()], ["outcome", "targets"],
           Format.table, title="Outcomes")
    if s["effects"]:
        render([{"step type": name, "times": count} for name, count in s["effects"].items()], ["step type", "times"],
               Format.table, title="Not carried out")
    render([{"node": n["id"], "type": n["type"], "entered": n["entered"],
             "left by": " · ".join(f"{edge}: {count}" for edge, count in n["left"].items()),
             "ended here": " · ".join(f"{outcome}: {count}" for outcome, count in n["ended"].items())}
            for n in s["nodes"]], ["node", "type", "entered", "left by", "ended here"], Format.table, title="Nodes")
    render([{"targets": p["count"], "example": p["target_key"], "outcome": _outcome(p), "path": _path(p)}
            for p in s["paths"]], ["targets", "example", "outcome", "path"], Format.table,
           title=f"Example paths ({s['distinct_paths']} distinct)")
    for message in s["messages"]:
        text = message["text"] if len(message["text"]) <= SHOWN_TEXT else message["text"][:SHOWN_TEXT] + "…"
        info(f"\n[{message['node']}] {_time(message['at'])} to {message['to']} via {message['channel']}: "
             f"{message['subject']}\n{text}")
    if s["problems"] or s["not_simulatable"]:
        render([{"node": p["node"], "problem": p["kind"], "targets": p["count"], "example": p["target_key"],
                 "detail": p["message"]} for p in s["problems"]]
               + [{"node": n["node"], "problem": "cannot be simulated", "targets": 0, "example": "",
                   "detail": f"step type {n['type']}"} for n in s["not_simulatable"]
                  if not any(p["node"] == n["node"] for p in s["problems"])],
               ["node", "problem", "targets", "example", "detail"], Format.table, title="Problems")


def _outcome(path: dict[str, Any]) -> str:
    if path["outcome"] != "waiting":
        return str(path["outcome"])
    if path["waiting_for"]:
        return f"waiting for {', '.join(path['waiting_for'])}"
    return f"waiting until {_time(path['until'])}" if path["until"] else "waiting"


def _path(path: dict[str, Any]) -> str:
    return " ".join(f"{step['node']} -{step['edge']}->" if step["edge"] else step["node"] for step in path["steps"])


def _time(iso: str) -> str:
    return iso[:16].replace("T", " ") + " UTC"
