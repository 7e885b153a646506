"""A recipient in a real browser (Debian's chromium driven by Playwright): the email's link, the landing page's
form, the awareness page, then the training course and its quiz; and what the results say about it after."""

from __future__ import annotations

import email
import re
import uuid
from datetime import timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from campaignkit.core.db import reading
from campaignkit.core.db.schema import events, phishing_results

SIMULATION = """
name: Browser simulation
kind: phishing
audience: {source: csv, path: %s}
settings:
  channel: file
  attacks:
    - {name: Shared document, template: email/phishing/shared_document, sender: "Share <s@docs.test>",
       kind: credentials}
  sending: {business_hours_only: false}
  scanners: {seconds_after_delivery: 5}
  training: {assign: on_credentials, remind_every: P3D, reminders: 1}
"""
LINK = re.compile(r"https?://\S+/p/[0-9a-f]{32}(?:/[\w.]+)?")


@pytest.fixture
def ck_settings(ck_web_url: str) -> dict[str, Any]:
    return {"web": {"base_url": ck_web_url}}  # the emails' links lead to the served app


def sent_to(outbox: Path, address: str) -> list[str]:
    """The text parts of the emails to ``address``, oldest first."""
    found = []
    for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["To"] == address:
            found.append(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    return found


PERSON = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


@pytest.fixture
def person(browser: Any) -> Any:
    """A browser as people run it: headless chromium says HeadlessChrome, which the scanner rules filter out."""
    context = browser.new_context(user_agent=PERSON)
    yield context.new_page()
    context.close()


def test_a_recipient_follows_the_link_types_a_password_and_passes_the_training(
    ck_web: Any, ck_campaign: Any, ck_clock: Any, person: Any, browser: Any, tmp_path: Path
) -> None:
    page = person
    runtime = ck_web.runtime
    campaign_id = ck_campaign.create(SIMULATION % ck_campaign.csv("email,name,groups\nada@example.org,Ada,Finance\n"))
    ck_campaign.launch(campaign_id)
    ck_campaign.run_to_idle()
    outbox = runtime.settings.var_dir / "outbox"
    link = LINK.search(sent_to(outbox, "ada@example.org")[0]).group(0)  # type: ignore[union-attr]
    ck_clock.advance(timedelta(minutes=20))

    page.goto(link)
    assert page.locator("h1").inner_text() == "Sign in to continue"
    secret = f"pw-{uuid.uuid4().hex}"
    page.fill("input[name=username]", "ada@example.org")
    page.fill("input[name=password]", secret)
    page.click("#sign-in button")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "This was a simulated phishing email"
    assert "Ada, you entered details" in page.locator("#simulation").inner_text()
    page.screenshot(path=str(tmp_path / "awareness.png"))

    ck_campaign.run_to_idle()  # entered credentials: the training is assigned and its link emailed
    training = sent_to(outbox, "ada@example.org")[1]
    assert "Take the course: " in training and "/training" in training
    page.goto(LINK.search(training).group(0))  # type: ignore[union-attr]
    assert page.locator("h2").first.inner_text() == "Spotting phishing in five minutes"
    wrong = page.locator("fieldset").nth(0).locator("input[type=radio]").nth(0)
    wrong.check()
    for index in (1, 2):
        page.locator("fieldset").nth(index).locator("input[type=radio]").nth(1).check()
    page.click("#quiz-submit")
    page.wait_for_load_state()
    assert "2 of 3 right; 3 needed" in page.locator("#training-failed").inner_text()
    for index in range(3):
        page.locator("fieldset").nth(index).locator("input[type=radio]").nth(1).check()
    page.click("#quiz-submit")
    page.wait_for_load_state()
    assert "you passed the quiz (3 of 3)" in page.locator("#training-passed").inner_text()

    ck_campaign.run_to_idle()
    with reading(runtime.engine) as conn:
        row = conn.execute(select(phishing_results)).one()
        names = conn.execute(select(events.c.name, events.c.payload).where(events.c.run_id == row.run_id)
                             .order_by(events.c.id)).all()
    assert row.clicked_at and row.submitted_at and row.training_started_at and row.training_finished_at
    assert row.submitted_at >= row.clicked_at and row.training_finished_at >= row.training_started_at
    submitted = next(payload for name, payload in names if name == "submitted")
    assert submitted["fields"] == "username, password" and "Chrome" in submitted["user_agent"]
    assert secret not in str(names)
    assert ck_campaign.runs(campaign_id)[0].status == "completed"  # training finished: the run is done

    headless = browser.new_page()  # the default headless user agent: a scanner's, recorded and not counted
    headless.goto(link)
    headless.close()
    with reading(runtime.engine) as conn:
        filtered = conn.execute(select(events.c.payload).where(events.c.name == "filtered_hit")).scalars().all()
    assert [(p["hit"], p["reason"]) for p in filtered] == [("clicked", "scanner user agent (headlesschrome)")]
