"""Approver pages in a real browser (Debian's chromium driven by Playwright): what an approver sees and clicks."""

from __future__ import annotations

from datetime import UTC, datetime
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


def test_an_auditor_reads_the_run_history_tab_filters_it_and_pages_it(review: Any, page: Any, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from campaignkit.core.accounts.roles import Role
    from campaignkit.core.accounts.users import Accounts
    from campaignkit.plugins.access_review import console

    monkeypatch.setattr(console, "PAGE_SIZE", 4)
    harness, _, launch, url = review
    Accounts(harness.runtime).add("ida", Role.AUDITOR, harness.actor, password="a long enough password")
    campaign_id = launch()
    page.goto(f"{url}/sign-in")
    page.fill("#name", "ida")
    page.fill("#password", "a long enough password")
    page.click("#sign-in")
    page.goto(f"{url}/campaigns/{campaign_id}")
    page.click("nav.tabs >> text=Run History")
    headers = page.locator("#run-history thead th").all_inner_texts()
    assert headers == ["User", "Application", "Approver", "Response Status", "Action Time", "Result"]
    users = page.locator("#run-history tbody tr td:first-child").all_inner_texts()
    assert users == sorted(users) and len(users) == 4  # a page of four, by user
    page.click("#history-older")
    assert len(page.locator("#run-history tbody tr").all()) == len(rows(harness, campaign_id)) - 4
    page.select_option("#h-status", "Message Delivery Failed")
    page.click("#h-show")
    failed = [r for r in rows(harness, campaign_id).values() if r["Response Status"] == "Message Delivery Failed"]
    assert len(page.locator("#run-history tbody tr").all()) == len(failed) > 0
    shown = {text.split("\n")[1]: int(text.split("\n")[0]) for text in page.locator("#history-counts li")
             .all_inner_texts()}
    assert shown == history_summary(harness.runtime, campaign_id)
    page.screenshot(path=str(tmp_path / "run-history.png"), full_page=True)
    page.goto(f"{url}/campaigns/{campaign_id}?tab=Run+History&sort=colour")
    assert "--sort: one of" in page.locator("#problem").inner_text()


def test_a_review_that_has_not_begun_shows_no_history_yet(review: Any) -> None:
    import httpx
    from review_support import AUDIENCE, REVIEW

    from campaignkit.core.accounts.roles import Role
    from campaignkit.core.accounts.users import Accounts

    harness, _, _, url = review
    Accounts(harness.runtime).add("ida", Role.AUDITOR, harness.actor, password="a long enough password")
    campaign_id = harness.create(REVIEW.format(path=harness.csv(AUDIENCE), extra=""))
    harness.campaigns.launch(campaign_id, harness.actor, at=datetime(2031, 3, 2, 9, 0, tzinfo=UTC))
    signed = httpx.post(f"{url}/sign-in", data={"name": "ida", "password": "a long enough password"})
    tab = httpx.get(f"{url}/campaigns/{campaign_id}", params={"tab": "Run History"},
                    cookies={"ck_session": signed.cookies["ck_session"]}).text
    assert "The campaign has not begun; it is scheduled for 2031-03-02 09:00 UTC" in tab
    assert 'id="run-history"' not in tab
