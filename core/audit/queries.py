"""Reading the audit trail: filtered listings and streamed exports, served by the table's indexes."""

from __future__ import annotations

import io
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

    def describe(self) -> str:
        """The filter in words, for the records of exports (empty: no filter)."""
        named = [f"{name} {value!r}" for name, value in (("type", self.audit_type), ("sub-type", self.sub_type),
                                                        ("user", self.user), ("object", self.object)) if value]
        named += [f"{name} {value.isoformat()}" for name, value in (("since", self.since), ("until", self.until))
                  if value]
        return ", ".join(named)


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


class AuditExport:
    """Matching records as CSV (with a header) or JSON lines, in audit_id order, as chunks of text of about
    CHUNK_CHARS: iterate it to stream an export of any size in constant memory; ``count`` says how many so far."""

    CHUNK_CHARS = 64 * 1024

    def __init__(self, runtime: Runtime, where: AuditFilter, fmt: str = "csv") -> None:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"export format: csv or jsonl, not {fmt!r}")
        self.runtime, self.where, self.fmt = runtime, where, fmt
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        buffer = io.StringIO()
        writer = CsvWriter(buffer, lineterminator="\r\n") if self.fmt == "csv" else None  # RFC 4180's ending
        if writer is not None:
            writer.writerow(COLUMNS)
        for record in iter_audit(self.runtime, self.where):
            record["audit_timestamp"] = record["audit_timestamp"].isoformat()
            if writer is not None:
                writer.writerow(record[column] for column in COLUMNS)
            else:
                buffer.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.count += 1
            if buffer.tell() >= self.CHUNK_CHARS:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()


def export_audit(runtime: Runtime, where: AuditFilter, out: TextIO, fmt: str = "csv") -> int:
    """Stream matching records to ``out`` as CSV (with a header) or JSON lines; returns how many."""
    export = AuditExport(runtime, where, fmt)
    for chunk in export:
        out.write(chunk)
    return export.count
