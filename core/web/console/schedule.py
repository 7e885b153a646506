"""Schedule (every role): scheduled launches, the next cycle of each recurring campaign and open cycles' deadlines,
by time, and the jobs the scheduler has registered (scheduling/upcoming.py, as GET /api/schedule and
`campaignkit schedule list`)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...accounts.sessions import Session
from ...scheduling.upcoming import schedule_overview
from . import Console

# A job whose time passed longer ago than this has not been run: most likely no scheduler is running.
OVERDUE_SECONDS = 120


def relative(moment: datetime | None, now: datetime) -> str:
    """'in 3 d 4 h', '5 min ago': the larger two units, enough to read a schedule at a glance."""
    if moment is None:
        return ""
    seconds = int((moment - now).total_seconds())
    later, seconds = seconds >= 0, abs(seconds)
    if seconds < 60:
        return "now" if seconds < 5 else ("in under a minute" if later else "under a minute ago")
    units = [("d", 86_400), ("h", 3_600), ("min", 60)]
    parts = []
    for name, size in units:
        if seconds >= size:
            parts.append(f"{seconds // size} {name}")
            seconds %= size
        elif parts:
            break
    text = " ".join(parts[:2])
    return f"in {text}" if later else f"{text} ago"


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    @routes.get("/schedule")
    def schedule(request: Request) -> Response:
        def render(session: Session) -> Response:
            overview = schedule_overview(console.runtime)
            now = overview["now"]
            campaigns = {item["launch_id"]: item for item in overview["upcoming"]}

            def overdue(moment: datetime | None) -> bool:
                return moment is not None and (now - moment).total_seconds() > OVERDUE_SECONDS

            return console.render(
                "schedule", session=session, now=now, upcoming=overview["upcoming"], jobs=overview["jobs"],
                campaigns=campaigns, relative=lambda moment: relative(moment, now), overdue=overdue,
                late_jobs=sum(overdue(job["next_run_at"]) for job in overview["jobs"]),
                sync_seconds=console.runtime.settings.scheduler.sync_seconds)

        return console.page(request, render)

    return routes
