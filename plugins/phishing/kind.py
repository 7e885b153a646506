"""phishing: a phishing-awareness simulation, one run per recipient.

The kind turns its settings into a workflow (workflow.py), picks each recipient's attack and send moment at launch
(launching.py), sends through its own step (steps.py), records what recipients do through their links (tracking.py,
routes.py) and what the mail system says about delivery (notifications.py), and lists the results By User, By
Group and By Attack (results.py) in its CLI (cli.py), its API and its console tabs (console.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaignkit.core.kinds import (
    CampaignKind,
    ConsoleTab,
    JobOutcome,
    KindJob,
    KindTemplate,
    LaunchedRun,
    RunStart,
    WebContext,
)

from .config import PhishingConfig
from .settings import PhishingSettings
from .vocabulary import (
    AUDIT_SUB_TYPES,
    BY_ATTACK,
    BY_GROUP,
    BY_USER,
    HIT_EVENTS,
    LINK_PREFIX,
    RESEND,
    SAMPLE_TOKEN,
    UNDELIVERED,
)

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter
    from sqlalchemy import Connection
    from starlette.routing import Router

    from campaignkit.core.interfaces import Target
    from campaignkit.core.step import StepContext

NAME = "phishing"


class Phishing(CampaignKind):
    """phishing: simulated phishing emails, what each recipient did with them, and the training that follows."""

    name = NAME
    description = "Simulated phishing emails to employees: delivery, opens, clicks, credentials, reports, training."
    Settings = PhishingSettings
    Config = PhishingConfig
    facets = ()
    # Tracking hits, notifications and resends come from campaignkit's own endpoints and commands only.
    system_events = frozenset({*HIT_EVENTS, RESEND, UNDELIVERED, "delivered", "filtered_hit"})
    template_names = frozenset({"recipient", "links", "attack", "training"})
    template_dir = Path(__file__).resolve().parent / "templates"
    audit_sub_types = AUDIT_SUB_TYPES
    listing = BY_USER
    console_tabs = (BY_USER.title, BY_GROUP.title, BY_ATTACK.title)
    link_paths = (LINK_PREFIX,)

    def workflow(self, settings: Any) -> Mapping[str, Any]:
        from .workflow import phishing_workflow

        return phishing_workflow(settings)

    def audience_key(self, settings: Any) -> list[str]:
        return [settings.email_column]

    def target_problem(self, settings: Any, attributes: Mapping[str, Any]) -> str | None:
        return settings.target_problem(attributes)  # type: ignore[no-any-return]

    def launch_planner(self, settings: Any, launched_at: datetime) -> Callable[[Target], RunStart]:
        from .launching import launch_planner

        return launch_planner(settings, launched_at)

    def launched(self, conn: Connection, settings: Any, campaign_id: str, launch_id: int,
                 batch: Sequence[LaunchedRun], now: datetime) -> None:
        from .launching import write_results

        write_results(conn, settings, campaign_id, launch_id, batch, now)

    def template_variables(self, settings: Any, ctx: StepContext) -> dict[str, Any]:
        """``recipient`` (name, email, groups), ``links`` (click, pixel, attachment, report, training) and
        ``attack`` (name, kind) of the run."""
        from campaignkit.core.db import reading

        from . import store
        from .links import recipient_links

        with reading(ctx.runtime.engine) as conn:
            row = store.result_by_run(conn, ctx.run_id) if ctx.run_id else None
        s: PhishingSettings = settings
        attack = s.attack(row.attack if row is not None else str(ctx.context.get("attack") or "")) or s.attacks[0]
        target = ctx.target
        return {
            "recipient": {"name": str(target.get(s.name_column) or ""), "email": str(target.get(s.email_column) or ""),
                          "groups": s.groups(target)},
            "links": recipient_links(ctx.runtime, row.token if row is not None else SAMPLE_TOKEN,
                                     attack.attachment_name),
            "attack": {"name": attack.name, "kind": attack.kind},
        }

    def extra_templates(self, settings: Any, row: Mapping[str, Any], now: datetime) -> list[KindTemplate]:
        """Every attack's email, tried with a sample row."""
        from .links import recipient_links

        s: PhishingSettings = settings
        found = []
        for attack in s.attacks:
            variables = {"target": dict(row), "context": {"attack": attack.name}, "now": now,
                         "run": {"id": 0, "campaign_id": "", "node": "send"},
                         "recipient": {"name": str(row.get(s.name_column) or ""),
                                       "email": str(row.get(s.email_column) or ""), "groups": s.groups(row)},
                         "links": recipient_links(self.runtime, SAMPLE_TOKEN, attack.attachment_name),
                         "attack": {"name": attack.name, "kind": attack.kind}}
            found += [KindTemplate(f"{attack.template}/{name}", variables, name != "body.html")
                      for name in ("subject.txt", "body.txt", "body.html")]
        if s.training.assign != "never":
            variables = {**variables, "training": {"url": "https://training.invalid/course", "course":
                                                   s.training.course, "reminder": False}}
            found += [KindTemplate(f"email/phishing/training/{name}", variables) for name in ("subject.txt",
                                                                                              "body.txt")]
        return found

    @classmethod
    def cli(cls) -> typer.Typer:
        from .cli import commands

        return commands()

    def console_tab(self, tab: str, campaign_id: str, query: Mapping[str, str]) -> ConsoleTab | None:
        from .console import results_tab

        return results_tab(self.runtime, tab, campaign_id, query)

    def jobs(self) -> list[KindJob]:
        config: PhishingConfig = self.config  # type: ignore[assignment]
        if config.mailbox is None and config.report_mailbox is None:
            return []
        return [KindJob("mailboxes", "phishing notifications and reports", read_mailboxes, config.poll_seconds)]

    def link_router(self, web: WebContext) -> Router:
        from .routes import recipient_router

        return recipient_router(web.runtime, web.rejections)

    def router(self, web: WebContext) -> APIRouter:
        from fastapi import APIRouter

        from .api import api_router

        router = APIRouter()
        router.include_router(api_router(web.runtime))
        if web.console is not None:
            from .console_routes import console_router

            router.include_router(console_router(web.runtime, web.console))
        return router


def read_mailboxes(runtime: Any) -> JobOutcome:
    from .mailboxes import drain_configured

    found = drain_configured(runtime)
    changed = bool(found.failed or found.reported)
    return JobOutcome(changed_runs=changed, summary="" if found.summary() == "nothing" else found.summary())
