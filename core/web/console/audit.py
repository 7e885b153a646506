"""The audit log: AuditHistory's sixteen columns, filtered, newest first, paged by audit id (page 10 000 costs
what page 1 does)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...audit import AuditType
from ...audit.queries import AuditFilter, audit_page
from ...clock import utc
from . import Console

PAGE_SIZE = 50
COLUMNS = [  # AuditHistory's columns, in its order, with the titles its readers know
    ("audit_id", "AuditID"), ("user_name", "UserName"), ("computer_name", "ComputerName"),
    ("computer_ip", "ComputerIP"), ("server_name", "ServerName"), ("audit_timestamp", "AuditTimestamp"),
    ("object_id", "ObjectID"), ("object_name", "ObjectName"), ("object_folder", "ObjectFolder"),
    ("version_major", "VersionMajor"), ("version_minor", "VersionMinor"), ("audit_type", "AuditType"),
    ("audit_sub_type", "AuditSubType"), ("details", "Details"), ("class_name", "ClassName"),
    ("assembly_name", "AssemblyName"),
]
Text = Annotated[str, Query(max_length=300)]


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    @routes.get("/audit")
    def audit(request: Request, type: Text = "", sub_type: Text = "", user: Text = "", object: Text = "",
              since: Text = "", until: Text = "", before: Annotated[int | None, Query(ge=1)] = None) -> Response:
        def render(session: Any) -> Response:
            problem, times = None, {}
            for name, value in (("since", since), ("until", until)):
                try:
                    times[name] = utc(datetime.fromisoformat(value.strip())) if value.strip() else None
                except ValueError:
                    problem, times[name] = f"{name}: {value[:40]!r} is not an ISO 8601 time such as 2030-01-07", None
            filters = AuditFilter(audit_type=type or None, sub_type=sub_type or None, user=user or None,
                                  object=object or None, since=times["since"], until=times["until"])
            records = audit_page(console.runtime, filters, before, PAGE_SIZE + 1)
            query = {"type": type, "sub_type": sub_type, "user": user, "object": object, "since": since,
                     "until": until}
            kept = urlencode({k: v for k, v in query.items() if v})
            older = (f"/audit?{kept}&before={records[PAGE_SIZE - 1]['audit_id']}".replace("?&", "?")
                     if len(records) > PAGE_SIZE else None)
            return console.render(
                "audit", session=session, records=records[:PAGE_SIZE],
                columns=[{"key": key, "title": title} for key, title in COLUMNS], filters=filters,
                audit_types=[str(t) for t in AuditType], since=since, until=until, problem=problem,
                older=older, newer=f"/audit?{kept}" if before is not None else None)

        return console.page(request, render)

    return routes
