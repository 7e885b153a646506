"""Runs a wave of steps: side-effecting ones on a bounded thread pool with a timeout, the rest inline."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from ..errors import StepError
from ..step import StepContext, StepResult
from .compiled import CompiledNode

Outcome = StepResult | Exception


class StepExecutor:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="campaignkit-step")

    def run(self, jobs: list[tuple[CompiledNode, StepContext]]) -> list[Outcome]:
        """One outcome per job, in order. Exceptions are returned, never raised: a plugin cannot stop us."""
        outcomes: list[Outcome | None] = [None] * len(jobs)
        pending: list[tuple[int, Future[StepResult], float, float]] = []
        for i, (node, ctx) in enumerate(jobs):
            if node.step.side_effect:
                deadline = time.monotonic() + node.timeout_seconds
                pending.append((i, self._pool.submit(node.step.execute, ctx), deadline, node.timeout_seconds))
        for i, (node, ctx) in enumerate(jobs):
            if not node.step.side_effect:
                outcomes[i] = _call(node, ctx)
        for i, future, deadline, timeout in pending:
            try:
                outcomes[i] = _checked(future.result(timeout=max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                # The thread cannot be killed; it finishes in the background and its result is ignored.
                future.cancel()
                outcomes[i] = StepError(f"timed out after {timeout:g}s")
            except Exception as exc:
                outcomes[i] = exc
        return outcomes  # type: ignore[return-value]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _call(node: CompiledNode, ctx: StepContext) -> Outcome:
    try:
        return _checked(node.step.execute(ctx))
    except Exception as exc:
        return exc


def _checked(result: object) -> Outcome:
    if isinstance(result, StepResult):
        return result
    return TypeError(f"step returned {type(result).__name__}, expected StepResult")
