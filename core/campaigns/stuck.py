"""Runs that cannot progress: what is stuck, where, and what each finding means (repair.py fixes them).

The scan costs a few small queries however many runs there are: where runs stand comes from the counts the database
keeps (run_counts: runs by cycle, status and node), held and overdue runs from the due-time index (a claim moves a
run's due time to its lease's expiry); runs themselves are read only where a count points at a problem.
"""

from __future__ import annotations

import os
import socket
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, func, select

from ..audit import AuditObject
from ..db import reading
from ..db.schema import LIVE_STATUSES, campaign_versions, campaigns, launches, run_counts, runs
from ..definitions.workflow import CampaignDefinition
from ..engine.compiled import compile_workflow

if TYPE_CHECKING:
    from ..runtime import Runtime

LEASE = "abandoned_lease"
OVERDUE = "overdue"
MISSING_NODE = "missing_node"
BROKEN_VERSION = "broken_version"
ENDED_CAMPAIGN = "ended_campaign"
UNFINISHED_CAMPAIGN = "unfinished_campaign"

# A worker polls every second or so: a run due this long ago and still not taken has no worker free to take it.
LEASE_GRACE = timedelta(minutes=1)
OVERDUE_AFTER = timedelta(minutes=10)

# What each finding means, in plain words, for the people who run campaigns (docs/journeys.md says the same).
MEANINGS = {
    LEASE: "A worker took these runs and is gone: its process has ended, or its hold on them ran out and it never "
           "came back. Repair lets the next worker take them now; a step the gone worker was part-way through runs "
           "again under the same idempotency key.",
    OVERDUE: "These runs have been due for more than 10 minutes and no worker has taken them: no worker is running, "
             "or the workers are far behind. Start one (`campaignkit worker`, or `serve`), or add workers; repair "
             "cannot do a worker's job.",
    MISSING_NODE: "These runs stand at a node that the campaign version they run on does not have: a worker was "
                  "part-way through them when the campaign was edited live, and wrote them back onto the new "
                  "version at a node of the old one (or the database was changed by hand). A worker cannot run "
                  "them, and every batch that takes one fails, holding back the runs taken with it. Repair moves "
                  "them where the version's node_mappings say; with no mapping it ends them as failed, saying why.",
    BROKEN_VERSION: "The campaign version these runs are on cannot run here: a step type or the campaign kind it "
                    "uses is not loaded (a plugin removed, blocked or failing to start). The runs keep their place "
                    "until the plugin is back (`campaignkit plugins` lists what is loaded); repair changes nothing.",
    ENDED_CAMPAIGN: "The campaign has ended but these runs have not: two changes crossed (a retry while the last "
                    "runs finished, or while the campaign was terminated). Repair puts a completed campaign back in "
                    "progress, so that it completes when they finish, and ends the runs of a terminated one.",
    UNFINISHED_CAMPAIGN: "Every run of the campaign has finished and it still says in progress: its last runs "
                         "finished at the same moment on two workers, and neither saw the other's. Repair completes "
                         "it as the worker would have (scheduled instead, when a cycle is still to come).",
}


def definition_node_mappings(definition: Mapping[str, Any]) -> Mapping[str, str]:
    """Where a version sends runs that stand at a node it does not have: its ``workflow.node_mappings``, ``{former
    node id: node id}``, which a live edit follows too (campaigns/live_edit.py). The default of
    ``repair(node_mappings=...)``: another source of mappings plugs in there."""
    workflow = definition.get("workflow") or {}
    return dict(workflow.get("node_mappings") or {})


NodeMappings = Callable[[Mapping[str, Any]], Mapping[str, str]]


@dataclass
class Finding:
    """Runs of one campaign stuck in one way (at one node, held by one worker, ...)."""

    kind: str
    campaign_id: str
    campaign: str
    runs: int
    detail: str  # what exactly: the node, the worker, since when
    action: str  # what repair does about it, or why it does nothing
    safe: bool  # the scheduler's repair job does it too
    fixed: int = 0  # runs (or, for a campaign's state, 1) that repair changed
    result: str = ""  # what repair did, as its audit record says
    fix: dict[str, Any] = field(default_factory=dict, repr=False)  # how: ids, nodes, ...

    @property
    def fixable(self) -> bool:
        return bool(self.fix)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "campaign_id": self.campaign_id, "campaign": self.campaign, "runs": self.runs,
                "detail": self.detail, "action": self.action, "safe": self.safe, "fixed": self.fixed,
                "result": self.result, "meaning": MEANINGS[self.kind]}


@dataclass(frozen=True)
class CampaignInfo:
    id: str
    name: str
    folder: str
    kind: str
    state: str
    version: tuple[int, int] | None

    def audit_object(self) -> AuditObject:
        return AuditObject(self.id, self.name, self.folder, self.version)


# --- finding --------------------------------------------------------------------------------------------------------


def find_stuck(runtime: Runtime, *, campaign_id: str | None = None,
               node_mappings: NodeMappings = definition_node_mappings) -> list[Finding]:
    """Every finding, of one campaign or of all; changes nothing."""
    return scan(runtime, campaign_id, node_mappings)[0]


def scan(runtime: Runtime, campaign_id: str | None,
         node_mappings: NodeMappings) -> tuple[list[Finding], dict[str, CampaignInfo]]:
    """The findings, and the campaigns they name (what repair audits them under)."""
    now = runtime.clock.now()
    with reading(runtime.engine) as conn:
        known = _campaigns(conn, campaign_id)
        live = _live_by_launch(conn, campaign_id)
        found = _held(conn, runtime, known, now, campaign_id) + _overdue(conn, known, now, campaign_id)
        found += _ended(conn, known, live) + _unfinished(conn, known, live)
        found += _unrunnable(conn, runtime, known, live, node_mappings)
    order = [LEASE, MISSING_NODE, BROKEN_VERSION, ENDED_CAMPAIGN, UNFINISHED_CAMPAIGN, OVERDUE]
    return sorted(found, key=lambda f: (order.index(f.kind), f.campaign, f.detail)), known


def _campaigns(conn: Connection, campaign_id: str | None) -> dict[str, CampaignInfo]:
    query = (select(campaigns.c.id, campaigns.c.name, campaigns.c.folder, campaigns.c.kind, campaigns.c.state,
                    campaign_versions.c.major, campaign_versions.c.minor)
             .outerjoin(campaign_versions, campaign_versions.c.id == campaigns.c.current_version_id))
    if campaign_id is not None:
        query = query.where(campaigns.c.id == campaign_id)
    return {row.id: CampaignInfo(row.id, row.name, row.folder, row.kind, row.state,
                              (row.major, row.minor) if row.major is not None else None) for row in conn.execute(query)}


def _live_by_launch(conn: Connection, campaign_id: str | None) -> list[tuple[str, int, str, int]]:
    """(campaign, launch, node, runs) of every live run, from the counts; node '' is a run not started yet."""
    query = (select(run_counts.c.campaign_id, run_counts.c.launch_id, run_counts.c.node, func.sum(run_counts.c.runs))
             .where(run_counts.c.status.in_(LIVE_STATUSES))
             .group_by(run_counts.c.campaign_id, run_counts.c.launch_id, run_counts.c.node)
             .having(func.sum(run_counts.c.runs) > 0))
    if campaign_id is not None:
        query = query.where(run_counts.c.campaign_id == campaign_id)
    return [(row[0], row[1], row[2], int(row[3])) for row in conn.execute(query)]


def _versions(conn: Connection, live: list[tuple[str, int, str, int]]) -> tuple[dict[int, int], dict[int, Any]]:
    """Each live launch's version, and every version a live run may be on: its launch's, or a later one of its
    campaign (a live edit moves a journey's runs onto the new version, run by run: campaigns/live_edit.py)."""
    launch_ids = sorted({launch_id for _, launch_id, _, _ in live})
    if not launch_ids:
        return {}, {}
    of_launch = {row.id: row.version_id for row in conn.execute(
        select(launches.c.id, launches.c.version_id).where(launches.c.id.in_(launch_ids)))}
    earliest: dict[str, int] = {}  # per campaign: the oldest version a live cycle started on
    for cid, launch_id, _, _ in live:
        if launch_id in of_launch:
            earliest[cid] = min(earliest.get(cid, of_launch[launch_id]), of_launch[launch_id])
    rows = conn.execute(select(campaign_versions.c.id, campaign_versions.c.campaign_id, campaign_versions.c.major,
                               campaign_versions.c.minor, campaign_versions.c.definition)
                        .where(campaign_versions.c.campaign_id.in_(sorted(earliest))))
    return of_launch, {row.id: row for row in rows if row.id >= earliest[row.campaign_id]}


def _held(conn: Connection, runtime: Runtime, known: dict[str, CampaignInfo], now: datetime,
          campaign_id: str | None) -> list[Finding]:
    """Runs held by a worker that is gone. A held run was due when it was claimed, so every held run is in the
    due-time index up to now: one range read, counted per campaign and worker."""
    horizon = now + timedelta(seconds=runtime.settings.worker.lease_seconds)
    expired_before = now - LEASE_GRACE
    held: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for row in conn.execute(held_runs(horizon, campaign_id=campaign_id)):  # a few batches' worth (see _overdue)
        held[(row.campaign_id, row.lease_owner)].append(row.lease_until)
    found = []
    gone: dict[str, bool] = {}
    for (cid, owner), due in held.items():
        if owner not in gone:
            gone[owner] = worker_gone(owner)
        chosen = len(due) if gone[owner] else sum(1 for at in due if at < expired_before)
        if not chosen or cid not in known:
            continue
        since = min(due)
        why = ("its process is not running on this host" if gone[owner]
               else f"its hold ran out at {since:%Y-%m-%d %H:%M:%S} UTC ({_ago(now - since)} ago)")
        found.append(Finding(LEASE, cid, known[cid].name, chosen, f"worker {owner}: {why}",
                             "release them to the next worker", True,
                             fix={"owner": owner, "horizon": horizon,
                                  "expired_before": None if gone[owner] else expired_before}))
    return found


def held_runs(horizon: datetime, *, owner: str | None = None, campaign_id: str | None = None) -> Select[Any]:
    """Live runs a worker holds (``owner``, or any), read from the due-time index up to ``horizon``: a held run was
    due when it was claimed."""
    query = select(runs.c.id, runs.c.lease_token, runs.c.campaign_id, runs.c.lease_owner, runs.c.lease_until).where(
        runs.c.due_at <= horizon, runs.c.status.in_(LIVE_STATUSES),
        runs.c.lease_owner.is_not(None) if owner is None else runs.c.lease_owner == owner)
    return query if campaign_id is None else query.where(runs.c.campaign_id == campaign_id)


def overdue_runs(before: datetime, *, campaign_id: str | None = None) -> Select[Any]:
    """Live runs no worker holds, due before ``before``, read from the due-time index. Rows, not a GROUP BY
    campaign_id: for the grouping's order SQLite would walk a campaign index (every run) instead."""
    query = select(runs.c.campaign_id, runs.c.due_at).where(
        runs.c.due_at < before, runs.c.lease_owner.is_(None), runs.c.status.in_(LIVE_STATUSES))
    return query if campaign_id is None else query.where(runs.c.campaign_id == campaign_id)


def worker_gone(owner: str) -> bool:
    """Whether the worker ``owner`` (``host:pid:suffix``, as Worker names itself) is a process of this host that no
    longer runs. A worker elsewhere is not known to be gone: only its lease running out says so."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if os.name != "posix" or host != socket.gethostname() or not pid_text.isdigit():
        return False  # (on Windows, os.kill with signal 0 would end the process)
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (another user's): alive as far as we can tell
    return False


def _overdue(conn: Connection, known: dict[str, CampaignInfo], now: datetime,
             campaign_id: str | None) -> list[Finding]:
    overdue: dict[str, list[datetime]] = defaultdict(list)
    for row in conn.execute(overdue_runs(now - OVERDUE_AFTER, campaign_id=campaign_id)):
        overdue[row.campaign_id].append(row.due_at)
    found = []
    for cid, due in overdue.items():
        count, oldest = len(due), min(due)
        if cid in known:
            found.append(Finding(OVERDUE, cid, known[cid].name, int(count),
                                 f"the oldest due since {oldest:%Y-%m-%d %H:%M:%S} UTC ({_ago(now - oldest)} ago)",
                                 "none: start a worker, or add workers", False))
    return found


def _ended(conn: Connection, known: dict[str, CampaignInfo], live: list[tuple[str, int, str, int]]) -> list[Finding]:
    counted: dict[str, int] = defaultdict(int)
    for cid, _, _, n in live:
        counted[cid] += n
    found = []
    for cid, counted_runs in counted.items():
        campaign = known.get(cid)
        if campaign is None or campaign.state not in ("completed", "terminated") or not counted_runs:
            continue
        n = _live_runs(conn, cid)  # the counts said so; the runs themselves say how many
        if not n:
            continue
        if campaign.state == "completed":
            action = "put the campaign back in progress; it completes when these runs finish"
        else:
            action = "end these runs as terminated, as the termination meant"
        found.append(Finding(ENDED_CAMPAIGN, cid, campaign.name, n,
                             f"the campaign is {campaign.state}; {n} run(s) are not finished", action, True,
                             fix={"state": campaign.state}))
    return found


def _unfinished(conn: Connection, known: dict[str, CampaignInfo],
                live: list[tuple[str, int, str, int]]) -> list[Finding]:
    with_live = {cid for cid, _, _, n in live if n}
    found = []
    for campaign in known.values():
        if campaign.state != "in_progress" or campaign.id in with_live or _live_runs(conn, campaign.id):
            continue
        found.append(Finding(UNFINISHED_CAMPAIGN, campaign.id, campaign.name, 0,
                             "in progress, with no unfinished run", "complete the campaign", True, fix={"idle": True}))
    return found


def _unrunnable(conn: Connection, runtime: Runtime, known: dict[str, CampaignInfo],
                live: list[tuple[str, int, str, int]], node_mappings: NodeMappings) -> list[Finding]:
    """Runs on a version that does not compile here, or at a node their version does not have.

    The counts say where runs stand by cycle, and a cycle's runs are on its launch's version or, once the campaign
    was edited live, a later one. Where that settles it, nothing more is read. A campaign where it does not (runs
    kept on an older version at a node the newest removed, as a live edit without a mapping keeps them) has its
    unfinished runs counted by version and node, on the (campaign_id, status) index: the one part of the scan that
    grows with a campaign, and only while such runs are left."""
    of_launch, definitions = _versions(conn, live)
    problems = {vid: _compile_problem(runtime, row) for vid, row in definitions.items()}
    nodes = {vid: _node_ids(row.definition) for vid, row in definitions.items()}
    stuck: dict[tuple[str, int, str], int] = defaultdict(int)  # (campaign, version, node or '') -> runs
    unsettled: set[str] = set()
    for cid, launch_id, node, n in live:
        if cid not in known or launch_id not in of_launch:
            continue
        own = of_launch[launch_id]
        later = [vid for vid, row in definitions.items() if row.campaign_id == cid and vid > own] \
            if _moves_runs(runtime, known[cid].kind) else []
        if not later:  # every run of the cycle is on its launch's version
            if own in definitions and (problems[own] is not None or (node and node not in nodes[own])):
                stuck[(cid, own, node)] += n
        elif any(problems[vid] is not None for vid in (own, *later)) or (node and node not in nodes[max(later)]):
            # A run at a node the newest version has is on it (an edit moves runs only to where they can go on); at
            # another node it may be kept on an older version, which has it, or be stuck on a newer one.
            unsettled.add(cid)
    for cid in sorted(unsettled):
        for vid, node, n in conn.execute(
                select(runs.c.version_id, runs.c.current_node, func.count())
                .where(runs.c.campaign_id == cid, runs.c.status.in_(LIVE_STATUSES))
                .group_by(runs.c.version_id, runs.c.current_node)):
            if vid in definitions and (problems[vid] is not None or (node and node not in nodes[vid])):
                stuck[(cid, vid, node or "")] += int(n)
    found = []
    broken: dict[tuple[str, int], int] = defaultdict(int)
    for (cid, vid, node), n in sorted(stuck.items()):
        if problems[vid] is not None:
            broken[(cid, vid)] += n
        else:
            found.append(_at_missing_node(known[cid], definitions[vid], node, n, node_mappings))
    for (cid, vid), n in broken.items():
        row = definitions[vid]
        found.append(Finding(BROKEN_VERSION, cid, known[cid].name, n,
                             f"version {row.major}.{row.minor}: {problems[vid]}",
                             "none: load the plugin it needs again, or terminate the campaign", False))
    return found


def _moves_runs(runtime: Runtime, kind_name: str) -> bool:
    """Whether a live edit moves the kind's runs onto the new version; a kind not loaded here might."""
    kind = runtime.kinds.get(kind_name)
    return kind is None or kind.moves_runs_on_edit


def _at_missing_node(campaign: CampaignInfo, version: Any, node: str, n: int,
                     node_mappings: NodeMappings) -> Finding:
    target = node_mappings(version.definition).get(node)
    where = f"node {node!r}, which version {version.major}.{version.minor} does not have"
    fix: dict[str, Any] = {"version_id": version.id, "node": node, "to": None}
    if target is not None and target in _node_ids(version.definition):
        action, safe, fix["to"] = f"move them to node {target!r} (the version's node mapping)", True, target
    elif target is not None:
        action, safe = f"end them as failed: the node mapping names {target!r}, which is not a node either", False
    else:
        action, safe = "end them as failed, saying why (no node mapping names the node)", False
    return Finding(MISSING_NODE, campaign.id, campaign.name, n, where, action, safe, fix=fix)


def _compile_problem(runtime: Runtime, row: Any) -> str | None:
    """Why a worker could not run this version here, or None: it compiles as the worker compiles it."""
    try:
        compile_workflow(CampaignDefinition.model_validate(row.definition), row.id, row.campaign_id, runtime)
    except Exception as exc:  # whatever stops the worker stops these runs; say what it is
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return text
    return None


def _node_ids(definition: Mapping[str, Any]) -> set[str]:
    return {str(node.get("id")) for node in (definition.get("workflow") or {}).get("nodes") or ()}


def _live_runs(conn: Connection, campaign_id: str) -> int:
    """Live runs of a campaign, counted on the (campaign_id, status) index."""
    return int(conn.execute(select(func.count()).select_from(runs).where(
        runs.c.campaign_id == campaign_id, runs.c.status.in_(LIVE_STATUSES))).scalar_one())


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{max(minutes, 0)} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // (24 * 60)} days"
