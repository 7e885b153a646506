"""Shared by the access-review tests: a review with a real SMTP server (aiosmtpd) and the web app under uvicorn,
both on 127.0.0.1, and helpers to read what they produced."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from servers import serving
from sqlalchemy import select

from campaignkit.core.db.schema import audit_history
from campaignkit.core.testing import free_port
from campaignkit.core.web import create_app
from campaignkit.plugins.access_review.history import HistoryQuery, history_page

AUDIENCE = """user,user_email,application,approver
ada,ada@example.org,Payroll,grace@example.org
ada,ada@example.org,Git,linus@example.org
linus,linus@example.org,Git,linus@example.org
margaret,margaret@example.org,Payroll,
alan,alan@example.org,CRM,not-an-address
barbara,barbara@example.org,CRM,grace@example.org
"""
REVIEW = """
name: Quarterly access review
kind: access_review
audience: {{source: csv, path: {path}}}
schedule: {{end_after: P14D}}
settings:
  channel: smtp
  remind_every: P3D
  escalate_after: P5D
  fallback_approver: security@example.org
{extra}
"""
LINK = re.compile(r"http://127\.0\.0\.1:\d+/review/[A-Za-z0-9_.\-]+")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str, str]] = []  # to, subject, text
        self.controller: Any = None
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import email
        import email.policy

        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        self.messages.append((str(parsed["To"]), str(parsed["Subject"]), body))
        return "250 OK"

    def text_for(self, to: str) -> str:
        """The text of the first message ``to`` received."""
        return next(text for rcpt, _, text in self.messages if rcpt == to)

    def review_all_for(self, to: str) -> str:
        """The approve-all link of the first digest ``to`` received."""
        return ALL_LINK.search(self.text_for(to)).group(0)  # type: ignore[union-attr]

    def links_for(self, to: str) -> list[str]:
        return [LINK.search(text).group(0) for rcpt, _, text in self.messages if rcpt == to]  # type: ignore[union-attr]


def rows(harness: Any, campaign_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    page = history_page(harness.runtime, HistoryQuery(campaign_id, limit=1000))
    return {(r["User"], r["Application"]): r for r in page}


def audits(harness: Any, sub_type: str) -> list[Any]:
    with harness.runtime.engine.connect() as conn:
        return list(conn.execute(select(audit_history).where(audit_history.c.audit_sub_type == sub_type)))


NONCE = re.compile(r'name="nonce" value="([^"]*)"')
SHOWN = re.compile(r'name="run" value="(\d+)"')


def decide(link: str, choice: str, page: httpx.Response | None = None, **headers: str) -> httpx.Response:
    """What an approver's browser does: open the link's page (or reuse ``page``, as a resubmitted form would), then
    press a button: the form posts the page's nonce and, on an approve-all page, the items it shows."""
    page = page if page is not None else httpx.get(link)
    nonce = NONCE.search(page.text)
    fields = {"choice": choice, "nonce": nonce.group(1) if nonce else "",
              "run": list(dict.fromkeys(SHOWN.findall(page.text)))}
    return httpx.post(link, data=fields, headers=headers)


ALL_LINK = re.compile(r"http://127\.0\.0\.1:\d+/review/all/[A-Za-z0-9_.\-]+")
ITEM_LINK = re.compile(r"http://127\.0\.0\.1:\d+/review/(?!all/)[A-Za-z0-9_.\-]+")


def review_fixture(make_runtime: Any, make_harness: Callable[[Any], Any]) -> Iterator[Any]:
    """The `review` fixture (declared in conftest): harness, inbox, launch(extra_settings), web URL."""
    inbox = Inbox()
    smtp_port, web_port = free_port(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    inbox.controller, inbox.port = controller, smtp_port  # for tests that take the mail server down
    runtime = make_runtime(web={"base_url": f"http://127.0.0.1:{web_port}"},
                           plugins={"config": {"smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                                                        "sender": "reviews@example.org"}}})
    harness = make_harness(runtime)
    audience = harness.csv(AUDIENCE)

    def launch(extra: str = "") -> str:
        campaign_id = harness.create(REVIEW.format(path=audience, extra=extra))
        harness.campaigns.launch(campaign_id, harness.actor)
        harness.run_to_idle()
        return campaign_id

    try:
        with serving(create_app(runtime), web_port) as url:
            yield harness, inbox, launch, url
    finally:
        inbox.controller.stop()


def work_and_digest(harness: Any) -> Any:
    """What `campaignkit work --until-idle` does: advance runs, send digests, advance the runs a failure woke."""
    from campaignkit.plugins.access_review.digests import DigestSender

    harness.run_to_idle()
    stats = DigestSender(harness.runtime).send_due()
    harness.run_to_idle()
    return stats
