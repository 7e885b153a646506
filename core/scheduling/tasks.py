"""System tasks: what the scheduler runs, audited as System Task Started/Completed when audit.task_events is on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..audit import Actor, AuditSubType, AuditType, record
from ..db import writing

if TYPE_CHECKING:
    from ..runtime import Runtime


@contextmanager
def system_task(runtime: Runtime, name: str, code: object = None) -> Iterator[None]:
    """Wrap one task execution; the Completed record carries the outcome and duration."""
    if not runtime.settings.audit.task_events:
        yield
        return
    actor = Actor.system(runtime.instance_id)
    with writing(runtime.engine) as conn:
        record(conn, actor=actor, audit_type=AuditType.SYSTEM_TASK, sub_type=AuditSubType.STARTED,
               at=runtime.clock.now(), details=name, code=code)
    started = time.monotonic()
    outcome = "succeeded"
    try:
        yield
    except BaseException as exc:
        outcome = f"failed: {type(exc).__name__}: {exc}"
        raise
    finally:
        with writing(runtime.engine) as conn:
            record(conn, actor=actor, audit_type=AuditType.SYSTEM_TASK, sub_type=AuditSubType.COMPLETED,
                   at=runtime.clock.now(), code=code,
                   details=f"{name}: {outcome} in {time.monotonic() - started:.3f}s")
