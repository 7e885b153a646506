"""Retention: prune the step ledger of runs that finished long ago, in small transactions."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from ..db import writing
from ..db.schema import runs, step_records

if TYPE_CHECKING:
    from ..runtime import Runtime

CHUNK = 5000


def prune_step_records(runtime: Runtime, older_than: timedelta) -> int:
    """Delete step records of runs finished before now - older_than; returns how many went."""
    cutoff = runtime.clock.now() - older_than
    total = 0
    while True:
        with writing(runtime.engine) as conn:
            ids = select(step_records.c.id).join(runs, runs.c.id == step_records.c.run_id).where(
                runs.c.finished_at < cutoff).limit(CHUNK)
            deleted = conn.execute(delete(step_records).where(step_records.c.id.in_(ids.scalar_subquery()))).rowcount
        total += deleted
        if deleted < CHUNK:
            return total
