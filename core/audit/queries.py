"""Reading the audit trail: filtered listings and streamed exports, served by the table's indexes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import Select, String, and_, literal, or_, select, union

from ..csv_export import CsvWriter
from ..db import reading
from ..db.schema import audit_history, campaigns
from .catalog import sub_type_names

if TYPE_CHECKING:
    from ..runtime import Runtime

COLUMNS = [column.name for column in audit_history.columns]


@dataclass(frozen=True)
class AuditFilter:
    audit_type: str | None = None
    sub_type: str | None = None
    user: str | None = None
    object: str | None = None  # an object id or an object name
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        c = audit_history.c
        if self.audit_type:
            query = query.where(c.audit_type == self.audit_type)
        if self.sub_type:
            # Records keep the name they were written with (the chain hashes it): a renamed sub-type is asked for
            # under its current and former names, whichever the caller gives.
            query = query.where(c.audit_sub_type.in_(sub_type_names(self.sub_type)))
        if self.user:
            query = query.where(c.user_name == self.user)
        if self.object:
            # An id, or a name: a campaign's name through its ids, an object without an id by the name recorded.
            # Both branches go through the object_id index; one on object_name would cost every append about a
            # third of its speed.
            named = select(campaigns.c.id).where(campaigns.c.name == self.object)
            query = query.where(or_(c.object_id.in_(union(select(literal(self.object, String())), named)),
                                    and_(c.object_id.is_(None), c.object_name == self.object)))
        if self.since:
            query = query.where(c.audit_timestamp >= self.since)
        if self.until:
            query = query.where(c.audit_timestamp < self.until)
        return query


def list_audit(
    runtime: Runtime, where: AuditFilter, limit: int = 100, newest_first: bool = True
) -> list[dict[str, Any]]:
    order = audit_history.c.audit_timestamp.desc() if newest_first else audit_history.c.audit_timestamp
    query = where.apply(select(audit_history)).order_by(order, audit_history.c.audit_id).limit(limit)
    with reading(runtime.engine) as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def audit_page(runtime: Runtime, where: AuditFilter, before: int | None = None,
               limit: int = 50) -> list[dict[str, Any]]:
    """Matching records, newest first, after record ``before`` (by time, then id): keyset paging, so that a page
    deep in millions of records costs what the first does. The order is the one every filter's index (type, user,
    object or time, then the timestamp) already has, so no filter sorts what it matched."""
    c = audit_history.c
    query = where.apply(select(audit_history))
    if before is not None:
        at = select(c.audit_timestamp).where(c.audit_id == before).scalar_subquery()
        # "At or before its time" first, as a range the timestamp indexes serve; then past it among equal times.
        query = query.where(c.audit_timestamp <= at, or_(c.audit_timestamp < at, c.audit_id < before))
    with reading(runtime.engine) as conn:
        return [dict(row._mapping) for row in
                conn.execute(query.order_by(c.audit_timestamp.desc(), c.audit_id.desc()).limit(limit))]


def iter_audit(runtime: Runtime, where: AuditFilter, chunk: int = 5000) -> Iterator[dict[str, Any]]:
    """Every matching record in audit_id order, a page at a time (keyset paging keeps memory flat)."""
    after = 0
    while True:
        query = (where.apply(select(audit_history)).where(audit_history.c.audit_id > after)
                 .order_by(audit_history.c.audit_id).limit(chunk))
        with reading(runtime.engine) as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        if not rows:
            return
        yield from rows
        after = rows[-1]["audit_id"]


def export_audit(runtime: Runtime, where: AuditFilter, out: TextIO, fmt: str = "csv") -> int:
    """Stream matching records to ``out`` as CSV (with a header) or JSON lines; returns how many."""
    count = 0
    writer = CsvWriter(out, lineterminator="\r\n") if fmt == "csv" else None  # DictWriter's RFC 4180 ending
    if writer is not None:
        writer.writerow(COLUMNS)
    for record in iter_audit(runtime, where):
        record["audit_timestamp"] = record["audit_timestamp"].isoformat()
        if writer is not None:
            writer.writerow(record[column] for column in COLUMNS)
        else:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
