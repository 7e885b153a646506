"""A new version of a running journey taken up by the runs already in it, in the edit's own transaction.

The rules (docs/journeys.md, "Editing a live journey"):
- a run that has not started, or stands at a node the new version still has, moves onto it: its next step is the
  new version's (a changed template, a new node after it); a wait it is in keeps its wake-up time;
- a run at a node the new version removed moves to the node the new version's ``workflow.node_mappings`` names, as
  a new visit due at once (a new idempotency key);
- a run at a removed node that no mapping names stays on the version it was on and finishes there, as before.
Finished runs keep the version they ran; an access review or a simulation (kinds whose runs do not move) keeps
every run on its version.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, func, select, update

from ..db.schema import LIVE_STATUSES, runs
from ..definitions.workflow import Workflow
from ..engine.run_context import entering


@dataclass
class MovedRuns:
    """What an edit did to the runs in progress: moved (node kept), remapped (node -> (node, runs)), kept."""

    moved: int = 0
    remapped: dict[str, tuple[str, int]] = field(default_factory=dict)
    kept: Counter[str] = field(default_factory=Counter)  # removed node -> runs left on their version
    busy: int = 0  # runs a worker held: left on their version

    def describe(self) -> str:
        if not (self.moved or self.remapped or self.kept or self.busy):
            return "no run in progress"
        parts = [f"{self.moved + sum(n for _, n in self.remapped.values())} run(s) in progress moved onto it"]
        parts += [f"{n} from node {former!r} to {node!r} (node_mappings)" for former, (node, n) in
                  sorted(self.remapped.items())]
        parts += [f"{n} kept on their version at node {node!r}, which it removed" for node, n in
                  sorted(self.kept.items())]
        if self.busy:
            parts.append(f"{self.busy} kept on their version: a worker was running their step")
        return "; ".join(parts)


def move_runs(conn: Connection, campaign_id: str, version_id: int, workflow: Workflow, now: datetime,
              paused: bool) -> MovedRuns:
    """Move the campaign's runs in progress onto ``version_id`` (whose workflow is ``workflow``) by the rules above."""
    nodes = workflow.node_map()
    moved = MovedRuns()
    live = and_(runs.c.campaign_id == campaign_id, runs.c.status.in_(LIVE_STATUSES), runs.c.version_id != version_id,
                # A run a worker holds at this moment is not touched: the worker would write back the next node of
                # the old workflow. It finishes on its version (or a later edit moves it).
                runs.c.lease_owner.is_(None))
    at_nodes = conn.execute(select(runs.c.current_node, func.count()).where(live)
                            .group_by(runs.c.current_node)).all()
    moved.busy = conn.execute(select(func.count()).where(
        runs.c.campaign_id == campaign_id, runs.c.status.in_(LIVE_STATUSES), runs.c.version_id != version_id,
        runs.c.lease_owner.is_not(None))).scalar_one()
    for node, count in at_nodes:
        if node is None or node in nodes:
            at = runs.c.current_node.is_(None) if node is None else runs.c.current_node == node
            conn.execute(update(runs).where(live, at).values(version_id=version_id, updated_at=now))
            moved.moved += count
        elif node in workflow.node_mappings:
            target = workflow.node_mappings[node]
            moved.remapped[node] = (target, _remap(conn, live, node, target, version_id, now, paused))
        else:
            moved.kept[node] += count
    return moved


def _remap(conn: Connection, live: ColumnElement[bool], node: str, target: str, version_id: int, now: datetime,
           paused: bool) -> int:
    chosen = conn.execute(select(runs.c.id, runs.c.context).where(live, runs.c.current_node == node)).all()
    due = {"paused_due_at": now, "due_at": None} if paused else {"due_at": now}
    for run in chosen:
        # A new visit of the node it goes to: whatever the removed node was waiting for no longer applies.
        conn.execute(update(runs).where(runs.c.id == run.id).values(
            version_id=version_id, current_node=target, context=entering(dict(run.context), target),
            status="active", attempt=0, updated_at=now, lease_token=runs.c.lease_token + 1, **due))
    return len(chosen)
