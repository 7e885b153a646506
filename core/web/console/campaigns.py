"""Campaigns: the list, a campaign's page (overview and its executions), and an execution's timeline."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from ...accounts.sessions import Session
from ...campaigns.queries import (
    RunQuery,
    campaign_summary,
    list_campaigns,
    list_runs,
    node_counts,
    run_timeline,
    version_workflow,
)
from ...db.schema import FINAL_STATUSES, LIVE_STATUSES
from ...errors import CampaignkitError, NotFound
from ...kinds import CampaignKind
from . import Console
from .actions import may_operate
from .report_chart import activity
from .workflow_map import draw

PAGE_SIZE = 50
EXECUTIONS = "Executions"  # the tab every kind has; a kind adds its own (CampaignKind.console_tabs)
STATE_ACTIONS = {"draft": ("launch",), "completed": ("launch",), "scheduled": ("terminate",),
                 "in_progress": ("pause", "terminate"), "paused": ("resume", "terminate")}
DONE = {"launch": "Launched.", "pause": "Paused.", "resume": "Resumed.", "terminate": "Terminated.",
        "created": "Created.", "edited": "The definition is saved.",
        "scheduled": "Scheduled: its first cycle launches at the time given.",
        "retried": "Retried: the runs went back to the node where they stopped; the workers run them again."}
STATUSES = (*LIVE_STATUSES, *FINAL_STATUSES)
# The executions' orders, each read from an index (the API's RunQuery has more, for scripts that can wait).
CONSOLE_SORTS = ("created", "target", "status")


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    @routes.get("/campaigns")
    def campaigns(request: Request) -> Response:
        return console.page(request, lambda session: console.render(
            "campaigns", session=session, campaigns=list_campaigns(console.runtime), may_create=may_operate(session)))

    @routes.get("/campaigns/{campaign_id}")
    def campaign(
        request: Request,
        campaign_id: str,
        status: str = "",
        search: Annotated[str, Query(max_length=200)] = "",
        node: Annotated[str, Query(max_length=100)] = "",
        sort: str = "-created",
        after: Annotated[int | None, Query(ge=1)] = None,
        before: Annotated[int | None, Query(ge=1)] = None,
        at: Annotated[str | None, Query(max_length=300)] = None,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,  # by offset: only old bookmarks still carry it
        tab: Annotated[str, Query(max_length=100)] = EXECUTIONS,
        done: str = "",
    ) -> Response:
        def render(session: Any) -> Response:
            try:
                summary = campaign_summary(console.runtime, campaign_id)
            except NotFound as exc:
                return console.render("message", 404, session=session, message=str(exc))
            kind = console.runtime.kind(summary["kind"])
            tabs = [EXECUTIONS, *kind.console_tabs]
            common = {"session": session, "campaign": summary, "statuses": STATUSES, "tabs": tabs,
                      **_overview(console, summary),
                      **activity(console.runtime, summary["id"], request.query_params.get("report")),
                      "actions": STATE_ACTIONS.get(summary["state"], ()) if may_operate(session) else (),
                      "may_edit": may_operate(session) and summary["state"] != "terminated",
                      "done": DONE.get(done), "may_simulate": may_operate(session)}
            if tab in kind.console_tabs:
                return console.render("campaign", tab=tab, **common,
                                      **_kind_tab(console, kind, tab, campaign_id, request, session))
            column = sort.lstrip("-")
            query = RunQuery(campaign_id, status=status if status in STATUSES else None, search=search or None,
                             node=node or None, sort=column if column in CONSOLE_SORTS else "created",
                             descending=sort.startswith("-"), limit=PAGE_SIZE + 1)
            runs, newer, has_next = _executions(console, query, after, before, at, page)

            def link(**changes: Any) -> str:
                params = {"status": status, "search": search, "node": node, "sort": sort, **changes}
                return f"/campaigns/{campaign_id}?" + urlencode({k: v for k, v in params.items()
                                                                 if v not in ("", None)})

            def keyset(way: str, run: dict[str, Any]) -> str:  # the run's sort value and id, as the audit log's
                value, run_id = query.position(run)
                return link(**{way: run_id}, at=None if query.sort == "created" else value)

            return console.render(
                "campaign", runs=runs, tab=EXECUTIONS, status=status, search=search, node=node, sort=sort, **common,
                newer=(keyset("before", runs[0]) if runs else link()) if newer else None,
                older=keyset("after", runs[-1]) if has_next else None)

        return console.page(request, render)

    @routes.get("/runs/{run_id}")
    def execution(request: Request, run_id: int, view: str = "map") -> Response:
        return console.page(request, lambda session: _execution(console, session, run_id,
                                                                "timeline" if view == "timeline" else "map"))

    @routes.get("/runs/{run_id}/map")
    def full_screen_map(request: Request, run_id: int) -> Response:
        return console.page(request, lambda session: _execution(console, session, run_id, "full"))

    return routes


def _executions(console: Console, query: RunQuery, after: int | None, before: int | None, at: str | None,
                page: int) -> tuple[list[dict[str, Any]], bool, bool]:
    """A page of executions (PAGE_SIZE of them; ``query`` asks one more), whether there are some before and after
    it. Paged by keyset: just past the run ``after``, or ending just before ``before``, whose sort value is ``at``
    (for the newest or oldest first, the id itself); ``page`` (by offset) still opens old bookmarks."""
    cursor = after or before
    value: Any = cursor if query.sort == "created" else at
    if cursor is not None and value is not None:
        if before is not None:
            runs = list_runs(console.runtime, replace(query, before=(value, before)))
            if len(runs) > PAGE_SIZE:
                return runs[1:], True, True
            # Fewer than a page before it (runs came or went): the first page, full again.
        else:
            runs = list_runs(console.runtime, replace(query, after=(value, cursor)))
            return runs[:PAGE_SIZE], True, len(runs) > PAGE_SIZE
    elif page > 1:
        runs = list_runs(console.runtime, replace(query, offset=(page - 1) * PAGE_SIZE))
        return runs[:PAGE_SIZE], True, len(runs) > PAGE_SIZE
    runs = list_runs(console.runtime, query)
    return runs[:PAGE_SIZE], False, len(runs) > PAGE_SIZE


def _overview(console: Console, summary: dict[str, Any]) -> dict[str, Any]:
    """The campaign's workflow with the runs that entered each node, wait at it and left through each edge."""
    counts = node_counts(console.runtime, summary["id"])
    drawn = draw(version_workflow(console.runtime, summary["current_version_id"]),
                 (node for node, c in counts.items() if c.entered),
                 ((node, edge) for node, c in counts.items() for edge in c.left))
    return {"map": drawn, "counts": counts}


def _kind_tab(console: Console, kind: CampaignKind, tab: str, campaign_id: str, request: Request,
              session: Session) -> dict[str, Any]:
    """A kind's tab, rendered from its own template with its plain values and the signed-in ``person`` (to offer a
    change only to those who may make it); its refusal (a bad filter) as a message."""
    try:
        content = kind.console_tab(tab, campaign_id, dict(request.query_params))
    except CampaignkitError as exc:
        return {"tab_html": None, "problem": str(exc)}
    if content is None:
        return {"tab_html": None, "problem": None}
    html = console.runtime.pages.get_template(content.template).render(
        {**content.variables, "person": console.person(session, request)})
    return {"tab_html": Markup(html), "problem": None}  # rendered autoescaped: safe to place as it is


def _execution(console: Console, session: Any, run_id: int, view: str) -> Response:
    """An execution's page: the campaign's workflow with what this run did marked on it, or its timeline."""
    try:
        timeline = run_timeline(console.runtime, run_id)
    except NotFound as exc:
        return console.render("message", 404, session=session, message=str(exc))
    run, steps = timeline["run"], timeline["steps"]
    running = run["status"] in LIVE_STATUSES
    drawn = draw(version_workflow(console.runtime, run["version_id"]), (s["node_id"] for s in steps),
                 ((s["node_id"], s["edge"]) for s in steps if s["edge"]), run["current_node"] if running else None)
    return console.render("run_map" if view == "full" else "run", session=session, run=run, steps=steps, view=view,
                          running=running, map=drawn)
