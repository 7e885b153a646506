"""The audit trail: AuditHistory shape, same-transaction writes, gapless chained ids, tamper evidence, queries."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, inspect, select, text, update

from campaignkit.core.audit import Actor, AuditObject, AuditSubType, AuditType, record, verify
from campaignkit.core.audit.queries import AuditFilter, export_audit, list_audit
from campaignkit.core.db import reading, writing
from campaignkit.core.db.schema import audit_history

SEED_COLUMNS = [
    "audit_id", "user_name", "computer_name", "computer_ip", "server_name", "audit_timestamp", "object_id",
    "object_name", "object_folder", "version_major", "version_minor", "audit_type", "audit_sub_type", "details",
    "class_name", "assembly_name",
]


def write(runtime: Any, n: int, actor: Actor, sub_type: AuditSubType = AuditSubType.EDITED) -> None:
    for i in range(n):
        with writing(runtime.engine) as conn:
            record(conn, actor=actor, audit_type=AuditType.OBJECT_CHANGE, sub_type=sub_type,
                   at=runtime.clock.now() + timedelta(minutes=i),
                   obj=AuditObject("6f1c8a9e-0000-4000-8000-000000000001", "Quarterly review", "reviews", (1, 2)),
                   details=f"change {i}", code=runtime)


def test_table_has_the_audithistory_columns(runtime: Any) -> None:
    columns = [c["name"] for c in inspect(runtime.engine).get_columns("audit_history")]
    assert columns[: len(SEED_COLUMNS)] == SEED_COLUMNS


def test_records_name_actor_object_and_code(runtime: Any, actor: Actor) -> None:
    write(runtime, 1, actor)
    (row,) = list_audit(runtime, AuditFilter())
    assert row["user_name"] == "tester" and row["computer_ip"] == "127.0.0.1"
    assert row["object_name"] == "Quarterly review" and (row["version_major"], row["version_minor"]) == (1, 2)
    assert row["class_name"] == "campaignkit.core.runtime.Runtime" and row["assembly_name"] == "campaignkit"
    assert row["server_name"]
    assert row["audit_timestamp"].tzinfo is not None


def test_a_rolled_back_change_leaves_no_record(runtime: Any, actor: Actor) -> None:
    with pytest.raises(RuntimeError), writing(runtime.engine) as conn:
        record(conn, actor=actor, audit_type=AuditType.OPERATIONS, sub_type=AuditSubType.FORCE_WORKFLOW_STATUS,
               at=runtime.clock.now(), details="about to fail")
        raise RuntimeError("the change failed after its audit record was written")
    assert list_audit(runtime, AuditFilter()) == []
    write(runtime, 1, actor)
    assert [r["audit_id"] for r in list_audit(runtime, AuditFilter())] == [1]  # no gap left behind


def test_verify_passes_an_intact_chain_and_names_an_edited_record(runtime: Any, actor: Actor) -> None:
    write(runtime, 5, actor)
    with reading(runtime.engine) as conn:
        assert verify(conn) == (5, None)
    with writing(runtime.engine) as conn:
        conn.execute(update(audit_history).where(audit_history.c.audit_id == 3).values(details="nothing to see"))
    with reading(runtime.engine) as conn:
        checked, broken = verify(conn)
    assert checked == 2 and broken is not None and broken.audit_id == 3 and "altered" in broken.reason


@pytest.mark.parametrize("victim", [2, 5])
def test_verify_names_a_deleted_record(runtime: Any, actor: Actor, victim: int) -> None:
    write(runtime, 5, actor)
    with writing(runtime.engine) as conn:
        conn.execute(delete(audit_history).where(audit_history.c.audit_id == victim))
    with reading(runtime.engine) as conn:
        _, broken = verify(conn)
    assert broken is not None and broken.audit_id == victim


def test_concurrent_writers_get_gapless_ids_in_commit_order(make_runtime: Any, actor: Actor) -> None:
    runtimes = [make_runtime() for _ in range(4)]
    errors: list[BaseException] = []

    def writer(rt: Any) -> None:
        try:
            write(rt, 25, actor)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(rt,)) for rt in runtimes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with reading(runtimes[0].engine) as conn:
        ids = list(conn.execute(select(audit_history.c.audit_id).order_by(audit_history.c.audit_id)).scalars())
        assert ids == list(range(1, 101))
        assert verify(conn) == (100, None)


def test_filters_and_export(runtime: Any, actor: Actor) -> None:
    write(runtime, 3, actor)
    write(runtime, 2, Actor("auditor"), sub_type=AuditSubType.CREATED)
    start = runtime.clock.now()
    assert len(list_audit(runtime, AuditFilter(user="auditor"))) == 2
    assert len(list_audit(runtime, AuditFilter(sub_type="Edited"))) == 3
    # By object id here (names resolve through campaigns: see test_audit_coverage), within a time range.
    assert len(list_audit(runtime, AuditFilter(object="6f1c8a9e-0000-4000-8000-000000000001",
                                               since=start + timedelta(minutes=1),
                                               until=start + timedelta(minutes=2)))) == 2
    out = io.StringIO()
    assert export_audit(runtime, AuditFilter(audit_type="Object Change"), out, fmt="jsonl") == 5
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["audit_id"] for line in lines] == [1, 2, 3, 4, 5] and all(line["record_hash"] for line in lines)
    out = io.StringIO()
    assert export_audit(runtime, AuditFilter(user="tester"), out, fmt="csv") == 3
    assert out.getvalue().splitlines()[0].startswith("audit_id,user_name,computer_name")


def test_type_and_time_queries_use_an_index(runtime: Any) -> None:
    query = ("SELECT * FROM audit_history WHERE audit_type = 'System Task' "
             "AND audit_timestamp >= '2030-01-01' AND audit_timestamp < '2030-01-02'")
    with reading(runtime.engine) as conn:
        if runtime.engine.dialect.name == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + query)))
        else:
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # an empty table would be scanned otherwise
            plan = " ".join(str(r[0]) for r in conn.execute(text("EXPLAIN " + query)))
    assert "ix_audit_history_audit_type_audit_timestamp" in plan


def test_the_chain_hash_format_never_changes() -> None:
    """Every stored trail is verified with this function: a change of format would break all of them."""
    from campaignkit.core.audit import GENESIS_HASH, chain_hash

    row = {"audit_id": 1, "user_name": "ada", "audit_timestamp": datetime(2030, 1, 7, 9, 0, tzinfo=UTC),
           "object_id": None, "audit_type": "Interaction Event", "audit_sub_type": "Workflow Started",
           "details": "launch 1: 3 target(s)"}
    assert chain_hash(GENESIS_HASH, row) == "53ff501880349642b66f6615506cc4b90804117dcb2697eec2e78b2c1e98424b"
