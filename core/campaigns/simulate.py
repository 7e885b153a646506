"""Simulating a campaign: each target of its audience (or of a sample) walks the compiled workflow in memory, on a
simulated clock, and nothing outside is touched.

A separate pass, not the worker: no run, step record, event or outbox row is written, no channel, enforcement action,
field updater or ``on_workflow_event`` is called. Steps without side effects (branches, random cohorts, delays,
windows, outcomes) run as they do for real. Steps with side effects run their ``simulate`` (core's own render what
they would send and follow their success edge, simulated_steps.py); a step type that cannot be simulated stops the
target at its node, reported as ``not_simulated`` with the node named in the problems, and the rest of the audience
goes on: one plugin node should not hide what the rest of the workflow would do.

Time is fast-forwarded: a wait on time (a delay, a window, an event's timeout) jumps the target's clock to its end;
a wait for an event with no timeout ends the target as ``waiting`` for those events; the cycle's deadline
(``schedule.end_after``) arrives as the scheduler would bring it. Without fast-forward, a target stops at its first
wait. The audience is streamed and only counts and a bounded number of examples are kept (simulation_tally.py).
"""

from __future__ import annotations

import hashlib
import heapq
import random
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.compiled import CompiledWorkflow, compile_workflow
from ..engine.run_context import VISIT, entering
from ..engine.statements import FACETS
from ..errors import AudienceError, CampaignkitError, StepError
from ..interfaces import Target
from ..kinds import RunStart
from ..step import FAILURE, NEXT, RunEvent, StepContext, StepResult, StepType
from .launch import CHUNK, Progress, audience_targets
from .simulated_steps import BUILT_IN, simulate_step
from .simulation_tally import Hop, Tally, Walked

if TYPE_CHECKING:
    from ..definitions.workflow import CampaignDefinition
    from ..runtime import Runtime

MAX_STEPS = 500  # per target: a loop that only an event could leave (a reminder every few days) stops here
MAX_SAMPLE = 1_000_000
DEADLINE = "deadline"


@dataclass(frozen=True)
class SimulationOptions:
    sample: int | None = None  # a random sample of this many distinct targets; None: the whole audience
    fast_forward: bool = True
    audience: Path | None = None  # a CSV file instead of the definition's audience

    def __post_init__(self) -> None:
        if self.sample is not None and not 1 <= self.sample <= MAX_SAMPLE:
            raise CampaignkitError(f"sample: between 1 and {MAX_SAMPLE} targets, not {self.sample}")


def not_simulatable(workflow: CompiledWorkflow) -> list[dict[str, str]]:
    """Nodes whose step type has side effects and does not say how to simulate them (reached or not)."""
    return [{"node": node.id, "type": node.type} for node in workflow.nodes.values()
            if node.step.side_effect and type(node.step) not in BUILT_IN
            and type(node.step).simulate is StepType.simulate]


def simulate(runtime: Runtime, definition: CampaignDefinition, version_id: int, campaign_id: str, base_dir: Path,
             options: SimulationOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Simulate the campaign version; returns its summary (plain JSON values, see Tally.summary). ``progress`` is
    told how many targets were simulated, every few thousand."""
    started = time.perf_counter()
    workflow = compile_workflow(definition, version_id, campaign_id, runtime)
    now = runtime.clock.now()
    end_after = definition.schedule.end_after if definition.schedule else None
    walker = Walker(runtime, workflow, now + end_after if end_after else None, options.fast_forward)
    tally = Tally({node.id: (node.type, node.edges) for node in workflow.nodes.values()})
    kind = workflow.kind
    planner = kind.launch_planner(workflow.settings, now)
    audience = Audience(audience_targets(runtime, definition, base_dir, options.audience))
    planned = audience.planned(planner)
    chosen = reservoir(planned, options.sample) if options.sample is not None else planned
    for ordinal, (target, start) in enumerate(chosen, start=1):
        begins = max(now, start.due_at) if start is not None else now
        context = dict(start.context) if start is not None else {}
        tally.add(walker.walk(target, ordinal, begins, context))
        if progress is not None and ordinal % CHUNK == 0:
            progress(ordinal)
    if audience.distinct == 0:
        raise AudienceError("the audience is empty: no targets to simulate")
    return {
        "started_at": now.isoformat(),
        "deadline_at": walker.deadline.isoformat() if walker.deadline else None,
        "fast_forward": options.fast_forward,
        "sample": options.sample,
        "audience": {"rows": audience.rows, "targets": audience.distinct, "duplicates": audience.duplicates,
                     "file": str(options.audience.resolve()) if options.audience else None},
        **tally.summary(),
        "not_simulatable": not_simulatable(workflow),
        "elapsed_seconds": round(time.perf_counter() - started, 3),
    }


class Audience:
    """The audience's distinct targets, streamed: duplicates within a chunk merge as a launch merges them (later
    values win); a key seen in an earlier chunk is counted as a duplicate and not simulated again (a launch would
    merge its values into the first). Only an 8-byte digest of each key is kept (KeyDigests)."""

    def __init__(self, targets: Iterable[Target]) -> None:
        self.targets = targets
        self.rows = self.distinct = self.duplicates = 0
        self._seen = KeyDigests()

    def __iter__(self) -> Iterator[Target]:
        chunk: dict[str, Target] = {}
        for target in self.targets:
            self.rows += 1
            earlier = chunk.get(target.key)
            if earlier is not None:
                self.duplicates += 1
                chunk[target.key] = Target(target.key, {**earlier.attributes, **target.attributes}, earlier.line)
                continue
            chunk[target.key] = target
            if len(chunk) >= CHUNK:
                yield from self._fresh(chunk)
                chunk = {}
        yield from self._fresh(chunk)

    def _fresh(self, chunk: dict[str, Target]) -> Iterator[Target]:
        for key, target in chunk.items():
            if not self._seen.add(key):
                self.duplicates += 1
                continue
            self.distinct += 1
            yield target

    def planned(self, planner: Callable[[Target], RunStart] | None) -> Iterator[tuple[Target, RunStart | None]]:
        """Each target with where its kind would start its run (called once per target, in order, as at launch)."""
        for target in self:
            yield target, planner(target) if planner is not None else None


class KeyDigests:
    """The keys seen, as 8-byte digests in a sorted array (8 bytes a key, where a set of them would take about 70),
    the newest in a set folded into the array once it holds an eighth as many: about 17 bytes a key in all, and each
    digest copied some 9 times. A digest collision (one in 2**64 per pair) would count a target as a duplicate."""

    FOLD = 8192  # at least

    def __init__(self) -> None:
        self._sorted = array("Q")
        self._recent: set[int] = set()

    def add(self, key: str) -> bool:
        """True for a key not seen before (now seen)."""
        digest = int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest())
        if digest in self._recent:
            return False
        at = bisect_left(self._sorted, digest)
        if at < len(self._sorted) and self._sorted[at] == digest:
            return False
        self._recent.add(digest)
        if len(self._recent) >= max(self.FOLD, len(self._sorted) // 8):
            self._sorted = array("Q", heapq.merge(self._sorted, sorted(self._recent)))
            self._recent.clear()
        return True


def reservoir(items: Iterable[Any], size: int) -> list[Any]:
    """A uniform random sample of ``size`` items, in their order, holding no more than ``size`` at a time."""
    kept: list[tuple[int, Any]] = []
    rng = random.Random()
    for index, item in enumerate(items):
        if index < size:
            kept.append((index, item))
        else:
            slot = rng.randrange(index + 1)
            if slot < size:
                kept[slot] = (index, item)
    return [item for _, item in sorted(kept, key=lambda pair: pair[0])]


class Walker:
    """Walks one target at a time through the workflow, as the worker would advance its run."""

    def __init__(self, runtime: Runtime, workflow: CompiledWorkflow, deadline: datetime | None,
                 fast_forward: bool) -> None:
        self.runtime = runtime
        self.workflow = workflow
        self.deadline = deadline
        self.fast_forward = fast_forward
        self.listens_for_deadline = any(node.type == "wait_for_event" and DEADLINE in getattr(node.config, "events", ())
                                        for node in workflow.nodes.values())
        self.kind_variables = workflow.variables

    def walk(self, target: Target, ordinal: int, now: datetime, context: dict[str, Any]) -> Walked:
        walked = Walked(target.key)
        nodes = self.workflow.nodes
        node_id = self.workflow.start
        entering(context, node_id)
        facets: dict[str, Any] = {name: None for name in FACETS} | {"assignment": 0}
        events: list[RunEvent] = []
        wait: dict[str, Any] | None = None
        steps = 0
        while True:
            node = nodes[node_id]
            ctx = StepContext(
                run_id=-ordinal, campaign_id=self.workflow.campaign_id, target_key=target.key,
                target=target.attributes, context=context, node_id=node_id, visit=int(context[VISIT]), attempt=1,
                now=now, config=node.config, idempotency_key=f"ck:simulated:{ordinal}:{node_id}:{context[VISIT]}",
                runtime=self.runtime, edges=node.edges, wait=wait, events=events, facets=facets,
                deadline=self.deadline, kind_variables=self.kind_variables, simulated=True,
            )
            try:
                result = simulate_step(node.step, ctx)
                if not isinstance(result, StepResult):
                    raise TypeError(f"step returned {type(result).__name__}, expected StepResult")
                self._fold(result, context, facets, events)
                target_node = node.edges.get(result.edge) if result.edge and not result.waiting else None
                if result.edge is not None and target_node is None and result.edge != NEXT and not result.waiting:
                    raise StepError(f"no edge labelled {result.edge!r}", temporary=False)
            except NotImplementedError as exc:
                walked.hops.append(Hop(node_id, None, now))
                walked.outcome = "not_simulated"
                walked.problems.append((node_id, "not_simulated", str(exc) or f"{node.type} cannot be simulated"))
                return walked
            except Exception as exc:
                message = str(exc) if isinstance(exc, StepError) else f"{type(exc).__name__}: {exc}"
                walked.problems.append((node_id, "error", message))
                failure = node.edges.get(FAILURE) if getattr(exc, "follows_failure_edge", True) else None
                walked.hops.append(Hop(node_id, FAILURE if failure else None, now))
                if failure is None:
                    walked.outcome = "failed"
                    return walked
                node_id, wait = failure, None
                entering(context, node_id)
                steps += 1
                if steps >= MAX_STEPS:
                    return self._looping(walked, node_id, now)
                continue

            if result.waiting:
                stop = self._wait(walked, node_id, now, result, events)
                if stop is None:
                    return walked
                now = stop  # what the worker keeps of a wait that steps read back (``since`` only the ledger)
                wait = {"until": result.wait_until.isoformat() if result.wait_until else None,
                        "events": list(result.wait_for)}
                steps += 1  # a step that waits again and again without the clock moving counts too
                if steps >= MAX_STEPS:
                    return self._looping(walked, node_id, now)
                continue

            if node.step.side_effect:
                walked.effects.append(node.type)
                sent = (result.detail or {}).get("message")
                if isinstance(sent, dict):
                    walked.messages.append((node_id, now, sent))
            walked.hops.append(Hop(node_id, result.edge if target_node else None, now))
            if target_node is None:
                walked.outcome = "completed"
                return walked
            node_id, wait = target_node, None
            entering(context, node_id)
            steps += 1
            if steps >= MAX_STEPS:
                return self._looping(walked, node_id, now)

    def _fold(self, result: StepResult, context: dict[str, Any], facets: dict[str, Any],
              events: list[RunEvent]) -> None:
        """What the worker keeps of a step's result: context, facets, consumed events."""
        if result.context_updates:
            context.update(result.context_updates)
        if result.facets:
            unknown = set(result.facets) - set(self.workflow.kind.facets)
            if unknown:
                raise StepError(f"run facets the {self.workflow.kind.name} kind does not keep: "
                                f"{', '.join(sorted(unknown))}", temporary=False)
            if "assignee" in result.facets and result.facets["assignee"] != facets.get("assignee"):
                facets["assignment"] = int(facets.get("assignment") or 0) + 1
            facets.update(result.facets)
        if result.consumed_events:
            taken = set(result.consumed_events)
            events[:] = [e for e in events if e.id not in taken]

    def _wait(self, walked: Walked, node_id: str, now: datetime, result: StepResult,
              events: list[RunEvent]) -> datetime | None:
        """When the target goes on at this node (fast-forwarded), or None when it stops here."""
        until = result.wait_until
        deadline = self.deadline
        if self.fast_forward and deadline is not None and now < deadline and (until is None or until > deadline):
            if self.listens_for_deadline:  # the scheduler sends every unfinished run the event
                events.append(RunEvent(-1, DEADLINE, {}, deadline))
                return deadline
            walked.hops.append(Hop(node_id, None, deadline))  # the scheduler ends the run at the deadline
            walked.outcome = "terminated"
            return None
        if until is None or not self.fast_forward:
            walked.hops.append(Hop(node_id, None, now))
            walked.outcome, walked.until, walked.waiting_for = "waiting", until, tuple(result.wait_for)
            return None
        return max(now, until)

    @staticmethod
    def _looping(walked: Walked, node_id: str, now: datetime) -> Walked:
        walked.hops.append(Hop(node_id, None, now))
        walked.outcome = "looping"
        walked.problems.append((node_id, "looping", f"stopped after {MAX_STEPS} steps: the workflow loops and only "
                                                    "an event would end the loop"))
        return walked
