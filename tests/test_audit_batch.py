"""The audit chain's batch paths: ``append`` hashing many records in one pass, and ``verify_chain`` checking pages of
plain rows, write and check exactly the bytes the record-by-record ``keyed_hash`` defines."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from campaignkit.core.audit import (
    GENESIS_HASH,
    Actor,
    AuditObject,
    AuditSubType,
    AuditType,
    append,
    chain_head,
    entry,
    keyed_hash,
    verify_chain,
)
from campaignkit.core.audit.checkpoints import sign
from campaignkit.core.audit.keys import AuditKey
from campaignkit.core.db import reading, writing
from campaignkit.core.db.schema import audit_history

GOLDEN_SECRET = "golden-audit-key-WqN3xT8vL2pZ6mR9cY4bH7kJ"


def golden_rows() -> list[dict[str, Any]]:
    """Values of every kind a record holds: None, empty text, whole numbers, escaped controls, accents, a time in
    another zone and a naive one (taken as UTC)."""
    return [
        {"user_name": "ada", "audit_timestamp": datetime(2030, 1, 7, 9, 0, tzinfo=UTC), "object_id": None,
         "audit_type": "Interaction Event", "audit_sub_type": "Workflow Started", "details": "launch 1: 3 target(s)"},
        entry(actor=Actor("grace", "host-1", "10.0.0.7"), audit_type="Object Change", sub_type="Edited",
              at=datetime(2030, 1, 7, 10, 30, 15, 250, tzinfo=timezone(timedelta(hours=2))),
              obj=AuditObject("12345678-1234-5678-1234-567812345678", "Review \u00e9t\u00e9", "Q1", (3, 0)),
              details="line one\nline two \x1b[31m", code=AuditKey),
        {"user_name": "svc", "computer_name": "", "audit_timestamp": datetime(2030, 1, 7, 11, 0, 0, 999999),
         "audit_type": "System Task", "audit_sub_type": "Completed", "version_major": 0, "version_minor": 12},
    ]


def stored(runtime: Any) -> list[Mapping[str, Any]]:
    with reading(runtime.engine) as conn:
        return list(conn.execute(select(audit_history).order_by(audit_history.c.audit_id)).mappings())


def test_a_batch_writes_the_hashes_the_keyed_chain_always_had(make_runtime: Any) -> None:
    """Computed with keyed_hash record by record before appends were batched: stored chains must keep verifying."""
    runtime = make_runtime(audit_key=GOLDEN_SECRET)
    with writing(runtime.engine) as conn:
        assert chain_head(conn, lock=True) == (0, GENESIS_HASH)
        assert append(conn, golden_rows()) == [1, 2, 3]
    assert [row["record_hash"] for row in stored(runtime)] == [
        "b84ec48b892eea25cd51e969504e63123bd5c92b289493bdee7f9d25b749a20d",
        "fdcd1534c058279d2f7bfde45f6647a3faad4d68c296804d489aa824baad6ee1",
        "535f005346b9143246e698fddc8d13f0b840c38e29f5305e9bba53e907411604",
    ]
    with reading(runtime.engine) as conn:
        report = verify_chain(conn)
    assert (report.checked, report.broken) == (3, None)


def test_each_batched_hash_is_keyed_hash_of_the_stored_record(runtime: Any) -> None:
    with writing(runtime.engine) as conn:
        append(conn, golden_rows() * 3)
        append(conn, [])  # nothing: no ids, the head untouched
    key = runtime.audit_keys.current
    previous = GENESIS_HASH
    for row in stored(runtime):
        assert row["record_hash"] == keyed_hash(key, previous, row)
        previous = row["record_hash"]
    with reading(runtime.engine) as conn:
        assert chain_head(conn, lock=False) == (9, previous)


def write(runtime: Any, n: int) -> None:
    start = datetime(2030, 3, 1, tzinfo=UTC)
    with writing(runtime.engine) as conn:
        append(conn, [entry(actor=Actor("tester"), audit_type=AuditType.OBJECT_CHANGE, sub_type=AuditSubType.EDITED,
                            at=start + timedelta(seconds=i), details=f"change {i}") for i in range(n)])


@pytest.mark.parametrize("chunk", [1, 3, 5000])
def test_verify_reads_pages_and_names_the_first_break_in_any_of_them(runtime: Any, chunk: int) -> None:
    write(runtime, 10)
    with reading(runtime.engine) as conn:
        head = chain_head(conn, lock=False)
        report = verify_chain(conn, chunk=chunk, checkpoint=sign(runtime.audit_keys.current, *head,
                                                                   datetime(2030, 3, 2, tzinfo=UTC)))
    assert (report.checked, report.broken, report.last_hash) == (10, None, head[1])

    with writing(runtime.engine) as conn:
        conn.execute(update(audit_history).where(audit_history.c.audit_id == 8).values(details="edited"))
    with reading(runtime.engine) as conn:
        report = verify_chain(conn, chunk=chunk)
    assert report.broken is not None and (report.checked, report.broken.reason) == (7, "record 8 was altered")

    with writing(runtime.engine) as conn:
        conn.execute(delete(audit_history).where(audit_history.c.audit_id == 5))
    with reading(runtime.engine) as conn:
        report = verify_chain(conn, chunk=chunk)
    assert report.broken is not None and (report.checked, report.broken.reason) == (4, "record 5 is missing")
