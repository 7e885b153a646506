"""Audit trail benchmark: chained appends into SQLite, typed time-range queries over the table, a full verification.

    python benchmarks/audit.py [--records 1000000] [--batch 1000]

Prints append throughput (records/s, entry() and the keyed HMAC-SHA256 chain included, through ``append``, the
batch API the product uses), the median and worst time of audit queries by type and time range (the shape
`campaignkit audit --type ... --since ... --until ...` runs) and the time of a full chain verification, with the
CPU time of append and verify beside their wall time (the host is often shared). Targets at 1 000 000 rows:
>= 25 000 records/s appended, <= 50 ms per query, >= 100 000 records/s verified.
"""

from __future__ import annotations

import argparse
import atexit
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from host import machine  # benchmarks/host.py
from sqlalchemy import func, select

from campaignkit.core.audit import Actor, AuditObject, AuditSubType, AuditType, append, entry, verify
from campaignkit.core.db import reading, writing
from campaignkit.core.db.migrate import upgrade
from campaignkit.core.db.schema import audit_history
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings

KINDS = [
    (AuditType.INTERACTION_EVENT, AuditSubType.WORKFLOW_STARTED),
    (AuditType.INTERACTION_EVENT, AuditSubType.WORKFLOW_TERMINATION_REQUEST),
    (AuditType.OBJECT_CHANGE, AuditSubType.EDITED),
    (AuditType.CLIENT_JOB, AuditSubType.FILE_IMPORT),
    (AuditType.SYSTEM_TASK, AuditSubType.STARTED),
    (AuditType.SYSTEM_TASK, AuditSubType.COMPLETED),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000, help="records appended per transaction")
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ck-audit-bench-"))
    atexit.register(shutil.rmtree, folder, True)  # a million-row database is most of a gigabyte
    runtime = Runtime(Settings(var_dir=folder, database_url=f"sqlite:///{folder / 'audit.db'}",
                               audit_key=secrets.token_urlsafe(48)))
    upgrade(runtime.engine)
    rng = random.Random(7)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    actors = [Actor(f"user{i}", f"host{i % 20}", f"10.0.0.{i % 250}") for i in range(200)]
    objects = [AuditObject(f"00000000-0000-4000-8000-{i:012d}", f"Campaign {i}", "bench", (1, 0)) for i in range(500)]

    began, began_cpu = time.perf_counter(), time.process_time()
    written = 0
    while written < args.records:
        size = min(args.batch, args.records - written)
        rows = []
        for i in range(size):
            audit_type, sub_type = KINDS[rng.randrange(len(KINDS))]
            rows.append(entry(actor=actors[rng.randrange(200)], audit_type=audit_type, sub_type=sub_type,
                              at=start + timedelta(seconds=(written + i) * 3), obj=objects[rng.randrange(500)],
                              details=f"benchmark record {written + i}"))
        with writing(runtime.engine) as conn:
            append(conn, rows)
        written += size
    append_seconds, append_cpu = time.perf_counter() - began, time.process_time() - began_cpu

    span = timedelta(seconds=args.records * 3)
    timings = []
    for _ in range(args.queries):
        audit_type, _sub = KINDS[rng.randrange(len(KINDS))]
        since = start + span * rng.random() * 0.9
        until = since + timedelta(days=1)
        query = (select(audit_history).where(audit_history.c.audit_type == str(audit_type),
                                             audit_history.c.audit_timestamp >= since,
                                             audit_history.c.audit_timestamp < until)
                 .order_by(audit_history.c.audit_timestamp).limit(100))
        t = time.perf_counter()
        with reading(runtime.engine) as conn:
            conn.execute(query).all()
        timings.append((time.perf_counter() - t) * 1000)
    with reading(runtime.engine) as conn:
        total = conn.execute(select(func.count()).select_from(audit_history)).scalar_one()
        t, cpu = time.perf_counter(), time.process_time()
        checked, broken = verify(conn)
        verify_seconds, verify_cpu = time.perf_counter() - t, time.process_time() - cpu

    rate, verified = args.records / append_seconds, checked / verify_seconds
    print(f"command           python {' '.join(sys.argv)}")
    print(f"machine           {machine('sqlalchemy')}")
    print(f"records           {total}")
    print(f"append            {append_seconds:.2f} s, CPU {append_cpu:.2f} s ({rate:,.0f} records/s, batch "
          f"{args.batch})  {'PASS' if rate >= 25_000 else 'FAIL'} (>= 25 000/s)")
    print(f"query type+range  median {statistics.median(timings):.2f} ms, worst {max(timings):.2f} ms over "
          f"{args.queries} queries  {'PASS' if max(timings) <= 50 else 'FAIL'} (<= 50 ms)")
    print(f"verify chain      {checked} records in {verify_seconds:.2f} s, CPU {verify_cpu:.2f} s ({verified:,.0f} "
          f"records/s), {'intact' if broken is None else broken}  {'PASS' if verified >= 100_000 else 'FAIL'}"
          " (>= 100 000/s)")


if __name__ == "__main__":
    main()
