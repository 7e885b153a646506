"""A campaign's workflow drawn as a read-only map, with what one execution did marked on it.

A small layered (Sugiyama-style) layout: edges that close a loop (a reminder going back to its wait) are set aside,
each node goes one layer below its deepest predecessor, nodes in a layer are ordered by the mean position of their
predecessors (two sweeps), and the loop edges are drawn back up on the right. Nodes and edges the execution went
through are marked "taken", its current node "current".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from ...definitions.workflow import Workflow

NODE_WIDTH, NODE_HEIGHT = 170, 44
COLUMN, ROW = 210, 96  # distance between node centres
MARGIN = 30


@dataclass(frozen=True)
class MapNode:
    id: str
    type: str
    layer: int
    x: float  # centre
    y: float
    taken: bool
    current: bool


@dataclass(frozen=True)
class MapEdge:
    source: str
    target: str
    label: str
    path: str  # SVG path data
    label_x: float
    label_y: float
    taken: bool
    loop: bool  # drawn back up: it closes a cycle


@dataclass
class WorkflowMap:
    nodes: list[MapNode]
    edges: list[MapEdge]
    width: float
    height: float
    by_id: dict[str, MapNode] = field(default_factory=dict)


def draw(workflow: Workflow, taken_nodes: Iterable[str] = (), taken_edges: Iterable[tuple[str, str]] = (),
         current: str | None = None) -> WorkflowMap:
    """The map of ``workflow``; ``taken_edges`` are (node id, edge label) pairs an execution took."""
    nodes = workflow.node_map()
    out = {node_id: node.all_edges() for node_id, node in nodes.items()}
    start = workflow.start_node()
    order = _discovery_order(start, out, list(nodes))
    loops = _loop_edges(start, out, order)
    parents = _parents(order, out, loops)
    positions = _order_within_layers(_layers(order, parents), parents)

    taken_set, taken_pairs = set(taken_nodes), set(taken_edges)
    width: float = MARGIN * 2 + COLUMN * max(len(row) for row in positions) + 60
    height = MARGIN * 2 + ROW * len(positions)
    drawn = {}
    for depth, row in enumerate(positions):
        offset = (max(len(r) for r in positions) - len(row)) * COLUMN / 2
        for index, node_id in enumerate(row):
            drawn[node_id] = MapNode(node_id, nodes[node_id].type, depth,
                                     MARGIN + offset + COLUMN * index + COLUMN / 2,
                                     MARGIN + ROW * depth + NODE_HEIGHT / 2, node_id in taken_set, node_id == current)
    edges, lanes = [], 0
    for source in order:
        for label, target in out[source].items():
            if target not in drawn:
                continue  # validation refuses such a definition; a map never fails on one
            taken = (source, label) in taken_pairs
            a, b = drawn[source], drawn[target]
            between = [drawn[n] for row in positions[a.layer + 1:b.layer] for n in row]
            if (source, label) in loops or b.y <= a.y:
                edges.append(_loop(a, b, label, taken, width))
            elif between:  # a long edge: down a lane right of the nodes it passes, never through them
                lanes += 1
                lane = max(n.x for n in between) + NODE_WIDTH / 2 + 14 * lanes
                edges.append(_around(a, b, label, taken, lane))
                width = max(width, lane + MARGIN + 40)
            else:
                edges.append(_down(a, b, label, taken))
    return WorkflowMap(list(drawn.values()), edges, width, height, drawn)


def _discovery_order(start: str, out: Mapping[str, Mapping[str, str]], all_ids: Sequence[str]) -> list[str]:
    """Breadth-first from the start node, then any node it does not reach, in file order."""
    seen, queue = [start], [start]
    while queue:
        for target in out[queue.pop(0)].values():
            if target in out and target not in seen:
                seen.append(target)
                queue.append(target)
    return seen + [node_id for node_id in all_ids if node_id not in seen]


def _loop_edges(start: str, out: Mapping[str, Mapping[str, str]], order: Sequence[str]) -> set[tuple[str, str]]:
    """Edges that go back to a node on the current depth-first path: removing them leaves no cycle."""
    loops: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for root in [start, *order]:
        if root in state:
            continue
        stack: list[tuple[str, list[tuple[str, str]]]] = [(root, list(out[root].items()))]
        state[root] = 1
        while stack:
            node_id, pending = stack[-1]
            if not pending:
                state[node_id] = 2
                stack.pop()
                continue
            label, target = pending.pop(0)
            if target not in out:
                continue
            if state.get(target) == 1:
                loops.add((node_id, label))
            elif target not in state:
                state[target] = 1
                stack.append((target, list(out[target].items())))
    return loops


def _parents(order: Sequence[str], out: Mapping[str, Mapping[str, str]],
             loops: set[tuple[str, str]]) -> dict[str, list[str]]:
    """Each node's predecessors over the edges that are not loops: a graph without cycles."""
    parents: dict[str, list[str]] = {node_id: [] for node_id in order}
    for source in order:
        for label, target in out[source].items():
            if target in parents and (source, label) not in loops:
                parents[target].append(source)
    return parents


def _layers(order: Sequence[str], parents: Mapping[str, list[str]]) -> dict[str, int]:
    """Longest path from the roots: each node one layer below its deepest parent."""
    depth: dict[str, int] = {}

    def layer(node_id: str) -> int:
        if node_id not in depth:
            depth[node_id] = 0  # guards the recursion; the DAG has no cycle left
            depth[node_id] = max((layer(parent) + 1 for parent in parents[node_id]), default=0)
        return depth[node_id]

    for node_id in order:
        layer(node_id)
    return depth


def _order_within_layers(depth: Mapping[str, int], parents: Mapping[str, list[str]]) -> list[list[str]]:
    rows: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for node_id in depth:  # discovery order first
        rows[depth[node_id]].append(node_id)
    for _ in range(2):  # barycentre sweeps: a node under the mean place of its parents
        for upper, lower in pairwise(rows):
            place = {node_id: index for index, node_id in enumerate(upper)}
            mean = {node_id: _mean([place[p] for p in parents[node_id] if p in place], lower.index(node_id))
                    for node_id in lower}
            lower.sort(key=lambda node_id: mean[node_id])
    return rows


def _mean(values: list[int], default: int) -> float:
    return sum(values) / len(values) if values else float(default)


def _loop(source: MapNode, target: MapNode, label: str, taken: bool, width: float) -> MapEdge:
    """Back up on the right-hand side of both nodes."""
    side = max(source.x, target.x) + NODE_WIDTH / 2 + 24
    sx, sy = source.x + NODE_WIDTH / 2, source.y
    tx, ty = target.x + NODE_WIDTH / 2, target.y
    path = f"M{sx:.0f},{sy:.0f} C{side:.0f},{sy:.0f} {side:.0f},{ty:.0f} {tx:.0f},{ty:.0f}"
    return MapEdge(source.id, target.id, label, path, min(side, width - 30), (sy + ty) / 2, taken, True)


def _down(source: MapNode, target: MapNode, label: str, taken: bool) -> MapEdge:
    """To a node of the next layer."""
    sx, sy = source.x, source.y + NODE_HEIGHT / 2
    tx, ty = target.x, target.y - NODE_HEIGHT / 2
    middle = (sy + ty) / 2
    path = f"M{sx:.0f},{sy:.0f} C{sx:.0f},{middle:.0f} {tx:.0f},{middle:.0f} {tx:.0f},{ty:.0f}"
    return MapEdge(source.id, target.id, label, path, (sx + tx) / 2, middle, taken, False)


def _around(source: MapNode, target: MapNode, label: str, taken: bool, lane: float) -> MapEdge:
    """Down several layers: out to the lane below the source, along it, and in above the target."""
    sx, sy = source.x, source.y + NODE_HEIGHT / 2
    tx, ty = target.x, target.y - NODE_HEIGHT / 2
    top, bottom = sy + (ROW - NODE_HEIGHT) / 2, ty - (ROW - NODE_HEIGHT) / 2
    path = (f"M{sx:.0f},{sy:.0f} C{sx:.0f},{top:.0f} {lane:.0f},{sy:.0f} {lane:.0f},{top:.0f} "
            f"L{lane:.0f},{bottom:.0f} C{lane:.0f},{ty:.0f} {tx:.0f},{bottom:.0f} {tx:.0f},{ty:.0f}")
    return MapEdge(source.id, target.id, label, path, lane, (top + bottom) / 2, taken, False)
