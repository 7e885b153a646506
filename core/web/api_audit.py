"""The API's audit trail: records with AuditHistory's sixteen columns, newest first, paged by an opaque keyset cursor
(page 10 000 costs what page 1 does); streamed exports (CSV, JSON lines), audited as File Export like `campaignkit
audit export`; and the chain's verification state. Every account may read them; the console shows the same through
the same functions (core/web/console/audit.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from ..audit import Actor, AuditSubType, AuditType, record
from ..audit.queries import AuditExport, AuditFilter, audit_page
from ..audit.verification import chain_state
from ..clock import utc
from ..db import writing
from ..runtime import Runtime
from .cursors import Cursors
from .limits import client_ip

# AuditHistory's sixteen columns, in its order (the console's COLUMNS, without their titles).
FIELDS = ("audit_id", "user_name", "computer_name", "computer_ip", "server_name", "audit_timestamp", "object_id",
          "object_name", "object_folder", "version_major", "version_minor", "audit_type", "audit_sub_type", "details",
          "class_name", "assembly_name")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
Text = Annotated[str | None, Query(max_length=300)]
Time = Annotated[datetime | None, Query(description="ISO 8601; UTC unless it has an offset")]


def api_audit_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()
    cursors = Cursors(runtime, "audit")  # the salt audit cursors always had: those given out still read

    def matching(type: str | None, sub_type: str | None, user: str | None, object: str | None,
                 since: datetime | None, until: datetime | None) -> AuditFilter:
        return AuditFilter(type or None, sub_type or None, user or None, object or None,
                           utc(since) if since else None, utc(until) if until else None)

    @router.get("/api/audit")
    def audit(type: Text = None, sub_type: Text = None, user: Text = None, object: Text = None,
              since: Time = None, until: Time = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              cursor: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
        """Matching records, newest first; ``next`` is the cursor of the following page (null on the last)."""
        where = matching(type, sub_type, user, object, since, until)
        found = audit_page(runtime, where, cursors.read(cursor, where, _audit_id) if cursor else None, limit + 1)
        page = found[:limit]
        return {"records": [{field: row[field] for field in FIELDS} for row in page],
                "next": cursors.make(page[-1]["audit_id"], where) if len(found) > limit else None}

    @router.get("/api/audit/export")
    def export(request: Request, format: Literal["csv", "jsonl"] = "csv", type: Text = None, sub_type: Text = None,
               user: Text = None, object: Text = None, since: Time = None, until: Time = None) -> StreamingResponse:
        """Every matching record, oldest first, with every column (the chain's too), streamed."""
        where = matching(type, sub_type, user, object, since, until)
        actor = Actor(request.state.principal.user_name, None, client_ip(request))
        return export_response(runtime, where, format, actor, "an API client")

    @router.get("/api/audit/verification")
    def verification() -> dict[str, Any]:
        """The chain's state: the last full verification, the records since re-hashed now, the last checkpoint."""
        return chain_state(runtime).as_json()

    return router


def _audit_id(position: Any) -> int:
    if not isinstance(position, int) or isinstance(position, bool):
        raise TypeError("an audit cursor holds an audit id")
    return position


def export_response(runtime: Runtime, where: AuditFilter, fmt: str, actor: Actor, to: str) -> StreamingResponse:
    """An export as a download, audited (Client Job / File Export, as `audit export` is) before its first byte, so
    that an export cut short is on record too: who, from where, which format and filters."""
    matched = where.describe()
    with writing(runtime.engine) as conn:
        record(conn, actor=actor, audit_type=AuditType.CLIENT_JOB, sub_type=AuditSubType.FILE_EXPORT,
               at=runtime.clock.now(), code=AuditExport,
               details=f"audit export as {fmt} to {to}, " + (f"matching {matched}" if matched else "every record"))
    name = f"audit-{runtime.clock.now().strftime('%Y%m%dT%H%M%SZ')}.{fmt}"
    return StreamingResponse(iter(AuditExport(runtime, where, fmt)), media_type=MEDIA_TYPES[fmt],
                             headers={"Content-Disposition": f'attachment; filename="{name}"',
                                      "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
