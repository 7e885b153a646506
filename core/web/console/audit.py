"""The audit log: AuditHistory's sixteen columns, filtered, newest first, paged by audit id (page 10 000 costs
what page 1 does); the chain's verification state and "Verify now"; CSV and JSON lines exports of the filtered
records, streamed. Every role may read, export and verify."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from ...audit import Actor, AuditType
from ...audit.queries import AuditFilter, audit_page
from ...audit.verification import chain_state, verify_and_record
from ...clock import utc
from ...runtime import Runtime
from ..api_audit import export_response
from . import Console

log = logging.getLogger(__name__)
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


class Verifier:
    """"Verify now": one walk of the whole chain at a time in this process, on a thread of its own (some 20 seconds
    a million records on SQLite), so that the page answers at once and shows it running; the result is recorded as a
    Security / Audit Verified record of whoever asked, which the page then shows."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        self.running: tuple[str, datetime] | None = None  # who asked, and when

    def start(self, actor: Actor) -> bool:
        with self._lock:
            if self.running is not None:
                return False
            self.running = (actor.user_name, self.runtime.clock.now())
        threading.Thread(target=self._run, args=(actor,), name="audit-verify", daemon=True).start()
        return True

    def _run(self, actor: Actor) -> None:
        try:
            verify_and_record(self.runtime, actor)
        except Exception:  # the page stops saying "running"; the log says why
            log.exception("audit chain verification failed")
        finally:
            with self._lock:
                self.running = None


def _filters(type: str, sub_type: str, user: str, object: str, since: str,
             until: str) -> tuple[AuditFilter, str | None]:
    """The form's filters, and what is wrong with a time that does not parse (it is then left out)."""
    problem, times = None, {}
    for name, value in (("since", since), ("until", until)):
        try:
            times[name] = utc(datetime.fromisoformat(value.strip())) if value.strip() else None
        except ValueError:
            problem, times[name] = f"{name}: {value[:40]!r} is not an ISO 8601 time such as 2030-01-07", None
    return AuditFilter(audit_type=type or None, sub_type=sub_type or None, user=user or None, object=object or None,
                       since=times["since"], until=times["until"]), problem


def router(console: Console) -> APIRouter:
    routes = APIRouter()
    verifier = Verifier(console.runtime)

    @routes.get("/audit")
    def audit(request: Request, type: Text = "", sub_type: Text = "", user: Text = "", object: Text = "",
              since: Text = "", until: Text = "", before: Annotated[int | None, Query(ge=1)] = None) -> Response:
        def render(session: Any) -> Response:
            filters, problem = _filters(type, sub_type, user, object, since, until)
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
                older=older, newer=f"/audit?{kept}" if before is not None else None,
                chain=chain_state(console.runtime), verifying=verifier.running,
                exports={fmt: f"/audit/export?{urlencode({'format': fmt, **{k: v for k, v in query.items() if v}})}"
                         for fmt in ("csv", "jsonl")})

        return console.page(request, render)

    @routes.get("/audit/export")
    def export(request: Request, format: Text = "csv", type: Text = "", sub_type: Text = "", user: Text = "",
               object: Text = "", since: Text = "", until: Text = "") -> Response:
        def download(session: Any) -> Response:
            filters, problem = _filters(type, sub_type, user, object, since, until)
            if problem or format not in ("csv", "jsonl"):
                return console.render("message", 400, session=session,
                                      message=problem or "format: csv or jsonl")
            return export_response(console.runtime, filters, format, console.actor(session, request), "the console")

        return console.page(request, download)

    @routes.post("/audit/verify")
    async def verify(request: Request) -> Response:
        posted = await console.posted(request)  # every role: verifying reads the trail and records who asked
        if isinstance(posted, Response):
            return posted
        session, _ = posted
        if not verifier.start(console.actor(session, request)):
            return console.render("message", 409, session=session,
                                  message="a verification of the audit chain is running already: its result "
                                          "shows on the audit log when it ends")
        return RedirectResponse("/audit#chain", 303)

    return routes
