"""What a simulation keeps of its targets: counts per node, edge and outcome, and a bounded number of examples (paths,
rendered messages, problems). Its size does not grow with the audience: a million targets keep what a thousand do."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

MAX_PATHS = 200  # distinct paths counted one by one; the rest are counted together
SHOWN_PATHS = 5
MESSAGES_PER_NODE = 3
MAX_MESSAGES = 20
MAX_PROBLEMS = 50  # distinct (node, kind, message); the rest are counted together
MESSAGE_TEXT = 20_000  # characters of a message part kept as an example


class Hop(NamedTuple):  # a tuple: a target makes one per node it passes, a million targets many millions
    """One node a target went through: the edge it left by (None: it stopped there) and when, in simulated time."""

    node: str
    edge: str | None
    at: datetime


@dataclass
class Walked:
    """One target's simulated pass: where it went and how it ended."""

    key: str
    hops: list[Hop] = field(default_factory=list)
    outcome: str = "completed"  # completed, failed, waiting, terminated, not_simulated, looping
    until: datetime | None = None  # waiting: until when (None: for an event only)
    waiting_for: tuple[str, ...] = ()
    messages: list[tuple[str, datetime, dict[str, Any]]] = field(default_factory=list)  # node, at, message
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # node, kind, message
    effects: list[str] = field(default_factory=list)  # step types with side effects it would have run


@dataclass
class _Path:
    count: int
    example: Walked


class Tally:
    def __init__(self, nodes: dict[str, tuple[str, dict[str, str]]]) -> None:
        self.nodes = nodes  # node id -> (step type, edges: label -> node id), in the workflow's order
        self.entered: Counter[str] = Counter()
        self.left: Counter[tuple[str, str]] = Counter()
        self.ended: Counter[tuple[str, str]] = Counter()  # (node, outcome)
        self.outcomes: Counter[str] = Counter()
        self.effects: Counter[str] = Counter()
        self.paths: dict[tuple[Any, ...], _Path] = {}
        self.other_paths = 0
        self.messages: list[dict[str, Any]] = []
        self.per_node_messages: Counter[str] = Counter()
        self.problems: dict[tuple[str, str, str], list[Any]] = {}  # -> [count, example target key]
        self.other_problems = 0
        self.targets = 0
        self.last_at: datetime | None = None

    def add(self, walked: Walked) -> None:
        self.targets += 1
        for hop in walked.hops:
            self.entered[hop.node] += 1
            if hop.edge is not None:
                self.left[(hop.node, hop.edge)] += 1
        end = walked.hops[-1]
        self.ended[(end.node, walked.outcome)] += 1
        self.outcomes[walked.outcome] += 1
        self.effects.update(walked.effects)
        last = walked.until or end.at
        if self.last_at is None or last > self.last_at:
            self.last_at = last
        self._path(walked)
        for node, at, message in walked.messages:
            if len(self.messages) < MAX_MESSAGES and self.per_node_messages[node] < MESSAGES_PER_NODE:
                self.per_node_messages[node] += 1
                self.messages.append({"node": node, "target_key": walked.key, "at": at.isoformat(),
                                      **{k: _cut(v) for k, v in message.items()}})
        for problem in walked.problems:
            found = self.problems.get(problem)
            if found is not None:
                found[0] += 1
            elif len(self.problems) < MAX_PROBLEMS:
                self.problems[problem] = [1, walked.key]
            else:
                self.other_problems += 1

    def _path(self, walked: Walked) -> None:
        signature = (*((h.node, h.edge) for h in walked.hops), walked.outcome)
        found = self.paths.get(signature)
        if found is not None:
            found.count += 1
        elif len(self.paths) < MAX_PATHS:
            self.paths[signature] = _Path(1, walked)
        else:
            self.other_paths += 1

    def summary(self) -> dict[str, Any]:
        """Plain JSON values: what is stored, returned by the API and shown by the CLI and the console."""
        nodes = [{"id": node, "type": node_type, "entered": self.entered[node],
                  "left": {label: self.left[(node, label)] for label in edges if self.left[(node, label)]},
                  "ended": {outcome: n for (at, outcome), n in sorted(self.ended.items()) if at == node}}
                 for node, (node_type, edges) in self.nodes.items()]
        edges = [{"source": node, "label": label, "target": target, "count": self.left[(node, label)]}
                 for node, (_, node_edges) in self.nodes.items() for label, target in node_edges.items()]
        paths = sorted(self.paths.values(), key=lambda p: -p.count)[:SHOWN_PATHS]
        return {
            "targets": self.targets,
            "outcomes": dict(sorted(self.outcomes.items())),
            "effects": dict(sorted(self.effects.items())),
            "nodes": nodes,
            "edges": edges,
            "paths": [_shown_path(p) for p in paths],
            "distinct_paths": len(self.paths) + (1 if self.other_paths else 0),
            "other_paths": self.other_paths,
            "messages": self.messages,
            "problems": [{"node": node, "kind": kind, "message": message, "count": count, "target_key": key}
                         for (node, kind, message), (count, key) in sorted(self.problems.items(),
                                                                          key=lambda item: -item[1][0])],
            "other_problems": self.other_problems,
            "last_at": self.last_at.isoformat() if self.last_at else None,
        }


def _shown_path(path: _Path) -> dict[str, Any]:
    walked = path.example
    return {
        "count": path.count, "target_key": walked.key, "outcome": walked.outcome,
        "until": walked.until.isoformat() if walked.until else None, "waiting_for": list(walked.waiting_for),
        "steps": [{"node": h.node, "edge": h.edge, "at": h.at.isoformat()} for h in walked.hops],
    }


def _cut(value: Any) -> Any:
    return value[:MESSAGE_TEXT] if isinstance(value, str) else value
