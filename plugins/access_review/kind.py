"""access_review: each run is one user's access to one application, decided by an approver through a signed link.

The kind turns its settings into a workflow (workflow.py), gives templates the review's fields under stable names and
the decision link, serves the approvers' pages (routes.py), gathers digests on a schedule (digests.py), lists the run
history (history.py) and adds its commands (cli.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaignkit.core.kinds import (
    ENGINE_FACETS,
    CampaignKind,
    ConsoleTab,
    JobOutcome,
    KindJob,
    KindTemplate,
    RetryPoint,
    WebContext,
)

from .settings import AccessReviewSettings
from .vocabulary import AUDIT_SUB_TYPES, HISTORY
from .workflow import access_review_workflow

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter
    from sqlalchemy import Connection

    from campaignkit.core.runtime import Runtime
    from campaignkit.core.step import StepContext

NAME = "access_review"
ENFORCEMENT_FAILED = "enforcement-failed"


class AccessReview(CampaignKind):
    """access_review: approvers approve or revoke each user's access to each application."""

    name = NAME
    description = "User x application access, approved or revoked by approvers through signed links."
    Settings = AccessReviewSettings
    facets = ENGINE_FACETS  # assignee: the approver; response, response_at, result; notify: digest marks
    system_events = frozenset({"approved", "revoked", "undeliverable"})  # from link pages and the digest sender
    template_names = frozenset({"review", "links"})
    template_dir = Path(__file__).resolve().parent / "templates"
    audit_sub_types = AUDIT_SUB_TYPES
    listing = HISTORY
    console_tabs = (HISTORY.title,)
    link_paths = ("/review/",)  # the approvers' decision pages
    # A revocation that failed ends the run at the workflow's failed node (Result Failure); a retry runs it again.
    retry_points = {ENFORCEMENT_FAILED: RetryPoint("runs whose revocation failed", node="enforce",
                                                   audit="retry enforcement", facets={"result": "Failure"})}

    def workflow(self, settings: Any) -> Mapping[str, Any]:
        return access_review_workflow(settings)

    def audience_key(self, settings: Any) -> list[str]:
        return list(settings.key_columns)

    def target_problem(self, settings: Any, attributes: Mapping[str, Any]) -> str | None:
        return settings.target_problem(attributes)  # type: ignore[no-any-return]

    def template_variables(self, settings: Any, ctx: StepContext) -> dict[str, Any]:
        """``review``: the user, their e-mail, the application and the approver under stable names, whatever the
        audience's columns are called; ``links.decision``: the item's signed link, for its assignee."""
        from .links import run_links

        s: AccessReviewSettings = settings
        target, facets = ctx.target, ctx.facets
        return {
            "review": {"user": str(target.get(s.user_column) or ""),
                       "user_email": str(target.get(s.user_email_column) or ""),
                       "application": str(target.get(s.application_column) or ""),
                       "approver": str(facets.get("assignee") or target.get(s.approver_column) or "")},
            "links": run_links(ctx.runtime, ctx.run_id, facets, ctx.deadline, ctx.now),
        }

    def extra_templates(self, settings: Any, row: Mapping[str, Any], now: datetime) -> list[KindTemplate]:
        """A digest review's digest email (its HTML part is optional)."""
        if not settings.digest:
            return []
        from .digests import sample_digest_variables

        variables = sample_digest_variables(settings, row, now)
        return [KindTemplate(f"{settings.templates}/digest/{name}", variables, name != "body.html")
                for name in ("subject.txt", "body.txt", "body.html")]

    def launch_question(self, settings: Any, count_targets: Callable[[], int]) -> str | None:
        if settings.if_no_response != "revoke":
            return None
        return (f"this review revokes unanswered access at its deadline: {count_targets()} access(es) could be "
                "removed")

    def run_details(self, conn: Connection, run_id: int) -> dict[str, Any]:
        """The digests that listed the run: they are sent outside its own steps."""
        from sqlalchemy import select

        from campaignkit.core.db.schema import digest_items, digests

        carried = conn.execute(
            select(digests.c.id, digests.c.kind, digests.c.status, digests.c.assignee, digests.c.item_count,
                   digests.c.attempt, digests.c.sent_at, digests.c.error, digests.c.message_id)
            .join(digest_items, digest_items.c.digest_id == digests.c.id)
            .where(digest_items.c.run_id == run_id).order_by(digests.c.id))
        return {"digests": [dict(row._mapping) for row in carried]}

    @classmethod
    def cli(cls) -> typer.Typer:
        from .cli import commands

        return commands()

    @classmethod
    def cli_aliases(cls) -> Mapping[str, Callable[..., Any]]:
        from .cli import history, retry_enforcement

        return {"history": history, "campaign retry-enforcement": retry_enforcement}

    def console_tab(self, tab: str, campaign_id: str, query: Mapping[str, str]) -> ConsoleTab | None:
        from .console import TAB, run_history_tab

        return run_history_tab(self.runtime, campaign_id, query) if tab == TAB else None

    def link_router(self, web: WebContext) -> APIRouter:
        from .routes import review_router

        return review_router(web.runtime, web.rejections)

    def router(self, web: WebContext) -> APIRouter:
        from fastapi import APIRouter

        from .routes import api_router

        router = APIRouter()
        router.include_router(api_router(web.runtime))
        if web.console is not None:  # the Run History tab's export and retry pages
            from .console_routes import console_router

            router.include_router(console_router(web.runtime, web.console))
        return router

    def jobs(self) -> list[KindJob]:
        seconds = self.runtime.settings.scheduler.digest_seconds
        return [KindJob("digests", "access-review digests", send_digests, seconds, also_in_work=True)]


def send_digests(runtime: Runtime) -> JobOutcome:
    from .digests import DigestSender

    stats = DigestSender(runtime).send_due()
    return JobOutcome(changed_runs=stats.changed_runs,
                      summary=f"{stats.sent} digest(s) sent" if stats.sent else "")
