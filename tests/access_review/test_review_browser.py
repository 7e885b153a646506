"""Approver pages in a real browser (Debian's chromium driven by Playwright): what an approver sees and clicks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from review_support import ALL_LINK, ITEM_LINK, rows, work_and_digest

from campaignkit.plugins.access_review.history import history_summary


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The pages do not depend on the database: SQLite only."""
    return f"sqlite:///{tmp_path / 'campaignkit.db'}"


def test_an_approver_opens_the_link_and_approves(review: Any, page: Any, clock: Any, tmp_path: Path) -> None:
    harness, inbox, launch, _ = review
    campaign_id = launch()
    link = inbox.links_for("linus@example.org")[0]
    opened = page.goto(link)
    assert opened.status == 200
    assert page.locator("#user").inner_text() == "ada" and page.locator("#application").inner_text() == "Git"
    assert history_summary(harness.runtime, campaign_id)["Approved"] == 0  # opening decides nothing
    page.screenshot(path=str(tmp_path / "review.png"))

    page.locator("#approve").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Thank you"
    assert "Approved" in page.locator("#decision").inner_text()
    page.goto(link)  # a later visit shows the decision and offers no buttons
    assert "Already decided" in page.locator("#decision").inner_text() and page.locator("#approve").count() == 0

    clock.advance(60)
    harness.run_to_idle()
    row = rows(harness, campaign_id)[("ada", "Git")]
    assert (row["Response Status"], row["Result"], row["Approver"]) == ("Approved", "Success", "linus@example.org")


def test_an_approver_revokes_all_items_of_a_digest_at_once(review: Any, page: Any, clock: Any,
                                                            tmp_path: Path) -> None:
    harness, inbox, launch, _ = review
    campaign_id = launch("  digest: true")
    work_and_digest(harness)
    text = next(t for to, _, t in inbox.messages if to == "grace@example.org")
    assert len(ITEM_LINK.findall(text)) == 2
    page.goto(ALL_LINK.search(text).group(0))  # type: ignore[union-attr]
    assert page.locator("#pending").inner_text() == "2"
    assert sorted(page.locator("#items tr.row td:first-child").all_inner_texts()) == ["ada", "barbara"]
    page.screenshot(path=str(tmp_path / "review_all.png"))

    page.locator("#revoke").click()
    page.wait_for_load_state()
    assert page.locator("#decided").inner_text() == "2"
    clock.advance(60)
    work_and_digest(harness)
    history = rows(harness, campaign_id)
    assert {history[key]["Response Status"] for key in (("ada", "Payroll"), ("barbara", "CRM"))} == {"Revoked"}
    assert history[("ada", "Git")]["Response Status"] == "Pending Response"  # linus's item is his to decide
