"""Runs a wave of steps: those that may block (a side effect calling out) on a bounded thread pool, each under its
own timeout, the rest inline.

The blocking steps go to the pool in one chunk per thread, each chunk running its steps one after another, so a
wave of 500 sends costs a few hand-overs instead of 500 futures. A step that overruns its timeout is given up (the
thread cannot be killed; it finishes in the background and its result is ignored) and the steps queued behind it in
its chunk go to the pool as a new chunk, so one hung call delays no other step by more than its own timeout.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ..errors import StepError
from ..step import StepContext, StepResult
from .compiled import CompiledNode

Outcome = StepResult | Exception
Job = tuple[CompiledNode, StepContext]


class StepExecutor:
    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="campaignkit-step")

    def run(self, jobs: list[Job]) -> list[Outcome]:
        """One outcome per job, in order. Exceptions are returned, never raised: a plugin cannot stop us."""
        outcomes: list[Outcome | None] = [None] * len(jobs)
        pooled = [i for i, (node, _) in enumerate(jobs) if node.pooled]
        size = -(-len(pooled) // self._threads) if pooled else 0
        chunks = [self._submit(jobs, pooled[at:at + size]) for at in range(0, len(pooled), size or 1)]
        for i, (node, ctx) in enumerate(jobs):
            if not node.pooled:
                outcomes[i] = _call(node, ctx)
        while chunks:
            chunk = chunks.pop()
            rest = chunk.wait()
            for i, outcome in chunk.outcomes.items():
                outcomes[i] = outcome
            if rest:  # queued behind a step that timed out
                chunks.append(self._submit(jobs, rest))
        return outcomes  # type: ignore[return-value]

    def _submit(self, jobs: list[Job], indexes: list[int]) -> _Chunk:
        chunk = _Chunk(jobs, indexes)
        self._pool.submit(chunk.run)
        return chunk

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Chunk:
    """Steps run one after another on one pool thread; the waiting side gives up on a step that overruns."""

    def __init__(self, jobs: list[Job], indexes: list[int]) -> None:
        self.jobs, self.indexes = jobs, indexes
        self.outcomes: dict[int, Outcome] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._next = 0  # position in indexes of the step running (or about to)
        self._started = time.monotonic()  # when that step started; a chunk queued behind others waits its turn
        self._given_up = False

    def run(self) -> None:
        with self._lock:
            self._started = time.monotonic()
        while True:
            with self._lock:
                if self._given_up or self._next >= len(self.indexes):
                    break
                i = self.indexes[self._next]
            node, ctx = self.jobs[i]
            outcome = _call(node, ctx)
            with self._lock:
                if self._given_up:
                    break  # this step timed out meanwhile; its outcome is already decided
                self.outcomes[i] = outcome
                self._next += 1
                self._started = time.monotonic()
        self._done.set()

    def wait(self) -> list[int]:
        """Wait for every step; returns the ones not started because the step before them timed out."""
        while True:
            with self._lock:
                if self._next >= len(self.indexes):
                    return []
                i, started = self.indexes[self._next], self._started
            timeout = self.jobs[i][0].timeout_seconds
            if self._done.wait(max(0.0, started + timeout - time.monotonic())):
                continue  # finished (or stopped after a timeout): the loop reads which
            with self._lock:
                if self._next < len(self.indexes) and self.indexes[self._next] == i and self._started == started:
                    self._given_up = True
                    self.outcomes[i] = StepError(f"timed out after {timeout:g}s")
                    return self.indexes[self._next + 1:]


def _call(node: CompiledNode, ctx: StepContext) -> Outcome:
    try:
        result = node.step.execute(ctx)
    except Exception as exc:
        return exc
    if isinstance(result, StepResult):
        return result
    return TypeError(f"step returned {type(result).__name__}, expected StepResult")
