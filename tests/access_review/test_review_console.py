"""The Run History tab's Export (the filtered history as CSV, for every role) and Retry failed enforcement (operators
and admins, behind a confirmation page, audited as the person), and their API twins. Enforcement fails for real: the
webhook action calls a directory on loopback (core's HttpReceiver) that refuses with 409 until it is told to work."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import make_cli
from conftest import Harness
from review_support import AUDIENCE, REVIEW, rows
from servers import serving

from campaignkit.core import create_app, send_event
from campaignkit.core.accounts.roles import Role
from campaignkit.core.accounts.users import Accounts
from campaignkit.core.testing import HttpReceiver
from campaignkit.plugins.access_review import console
from campaignkit.plugins.access_review.history import COLUMNS

PASSWORD = "a long enough password"
TAB = {"tab": "Run History"}


@dataclass
class Revoking:
    """A review that revokes through the webhook action, two of whose revocations failed, served on loopback."""

    harness: Harness
    url: str
    campaign_id: str
    directory: HttpReceiver
    up: list[bool]  # [False] while the directory refuses

    def run(self, key: str) -> Any:
        return next(r for r in self.harness.runs(self.campaign_id) if r.target_key == key)

    def signed(self, name: str) -> dict[str, str]:
        answer = httpx.post(f"{self.url}/sign-in", data={"name": name, "password": PASSWORD})
        return {"ck_session": answer.cookies["ck_session"]}

    def tab(self, cookies: dict[str, str], **params: str) -> str:
        answer = httpx.get(f"{self.url}/campaigns/{self.campaign_id}", params={**TAB, **params}, cookies=cookies)
        assert answer.status_code == 200
        return answer.text


@pytest.fixture
def revoking(make_runtime: Any, actor: Any, tmp_path: Path) -> Iterator[Revoking]:
    up = [False]

    def directory_answers(seen: Any) -> tuple[int, bytes]:
        return (200, b"{}") if up[0] else (409, b'{"error": "the directory is read-only"}')

    with HttpReceiver(directory_answers) as directory:
        runtime = make_runtime(plugins={"config": {"webhook_enforcement": {
            "url": f"{directory.url}/revoke", "retries": 0, "retry_backoff_seconds": 0}}})
        harness = Harness(runtime, actor, tmp_path)
        Accounts(runtime).add("grace", Role.OPERATOR, actor, password=PASSWORD)
        Accounts(runtime).add("ida", Role.AUDITOR, actor, password=PASSWORD)
        definition = REVIEW.format(path=harness.csv(AUDIENCE), extra="  on_revoke: revoke\n  enforcement: webhook")
        campaign_id = harness.create(definition.replace("channel: smtp", "channel: log"))
        harness.campaigns.launch(campaign_id, actor)
        harness.run_to_idle()
        with serving(create_app(runtime)) as url:
            review = Revoking(harness, url, campaign_id, directory, up)
            for key, event, approver in (("ada|Git", "revoked", "linus@example.org"),
                                         ("barbara|CRM", "revoked", "grace@example.org"),
                                         ("ada|Payroll", "approved", "grace@example.org")):
                send_event(runtime, review.run(key).id, event, {"approver": approver})
            harness.run_to_idle()
            yield review


def table(page: str) -> list[list[str]]:
    body = page.split('id="run-history"')[1].split("</table>")[0]
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>")[1], re.S)]


def link(page: str, element: str) -> str | None:
    """The href of the page's link with id ``element``, if it has one."""
    tag = re.search(f'<a [^>]*id="{element}"[^>]*>', page)
    return html.unescape(re.search(r'href="([^"]+)"', tag.group(0)).group(1)) if tag else None  # type: ignore[union-attr]


def as_tab_shows(row: list[str]) -> list[str]:
    """An exported row as the tab shows it: the same cells, the time as "2030-01-01 09:00:00 UTC"."""
    time = row[4].replace("T", " ").replace("+00:00", " UTC")
    return [*row[:4], time, row[5]]


def test_the_export_is_the_filtered_history_every_page_of_it(revoking: Revoking, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path, database_url: str) -> None:
    monkeypatch.setattr(console, "PAGE_SIZE", 2)  # the table pages; the export never does
    review, ida = revoking, revoking.signed("ida")
    api = {"Authorization": f"Bearer {review.harness.api_token('auditor', 'read')}"}
    cli = make_cli(monkeypatch, tmp_path, database_url)
    for filters in ({}, {"status": "Revoked"}, {"result": "Failure", "sort": "-user"}, {"application": "Git"},
                    {"sort": "-time"}):
        page = review.tab(ida, **filters)
        href = link(page, "history-export")
        assert href is not None and href.startswith(f"/campaigns/{review.campaign_id}/history/export?format=csv")
        answer = httpx.get(review.url + href, cookies=ida)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        assert answer.headers["content-disposition"].startswith("attachment; filename=")
        header, *exported = list(csv.reader(io.StringIO(answer.text)))
        assert header == COLUMNS
        shown = table(page)
        while (older := link(page, "history-older")) is not None:  # every page of the tab, in its order
            page = httpx.get(review.url + older, cookies=ida).text
            shown += table(page)
        assert [as_tab_shows(row) for row in exported] == shown and exported, filters
        # The API's export and `campaignkit history --format csv` write the very same bytes.
        through_api = httpx.get(f"{review.url}/api/campaigns/{review.campaign_id}/history/export",
                                params={"format": "csv", **filters}, headers=api)
        assert through_api.status_code == 200 and through_api.text == answer.text
        options = [f"--{name}={value}" for name, value in filters.items()]
        assert cli("access-review", "history", review.campaign_id, *options, "--format", "csv").stdout == answer.text
    statuses = {row["Response Status"] for row in rows(review.harness, review.campaign_id).values()}
    assert {"Revoked", "Approved", "Pending Response"} <= statuses  # the filters above had something to tell apart

    refused = httpx.get(f"{review.url}/campaigns/{review.campaign_id}/history/export",
                        params={"sort": "colour"}, cookies=ida)
    assert refused.status_code == 400 and "--sort: one of" in refused.text
    assert httpx.get(f"{review.url}/campaigns/{review.campaign_id}/history/export").headers["location"] == "/sign-in"
    assert httpx.get(f"{review.url}/api/campaigns/{review.campaign_id}/history/export", params={"format": "json"},
                     headers=api).status_code == 422


def test_an_operator_retries_the_failed_enforcement_and_it_is_audited_as_them(revoking: Revoking) -> None:
    review, grace = revoking, revoking.signed("grace")
    history = rows(review.harness, review.campaign_id)
    assert [history[key]["Result"] for key in (("ada", "Git"), ("barbara", "CRM"))] == ["Failure", "Failure"]
    assert [seen.path for seen in review.directory.seen] == ["/revoke", "/revoke"]

    retry = link(review.tab(grace), "history-retry")
    assert retry == f"/campaigns/{review.campaign_id}/retry-enforcement"
    confirm = httpx.get(review.url + retry, cookies=grace)
    cycle = review.run("ada|Git").launch_id
    assert confirm.status_code == 200 and f"2 revocation(s) of cycle {cycle} failed" in confirm.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', confirm.text).group(1)  # type: ignore[union-attr]
    form = {"csrf": csrf, "cycle": str(cycle)}
    assert httpx.post(review.url + retry, data={**form, "csrf": "guess"}, cookies=grace).status_code == 403
    assert httpx.post(review.url + retry, data=form, cookies=grace,
                      headers={"Origin": "https://evil.example"}).status_code == 403
    assert review.harness.audit("Force Workflow Status") == []  # nothing of that was done

    review.up[0] = True  # the directory is writable again
    done = httpx.post(review.url + retry, data=form, cookies=grace)
    assert done.status_code == 303
    assert done.headers["location"] == f"/campaigns/{review.campaign_id}?tab=Run+History&cycle={cycle}&retried=2"
    assert "2 failed enforcement(s) sent back" in httpx.get(review.url + done.headers["location"], cookies=grace).text
    review.harness.run_to_idle()
    history = rows(review.harness, review.campaign_id)
    assert [(history[key]["Response Status"], history[key]["Result"]) for key in (("ada", "Git"), ("barbara", "CRM"))
            ] == [("Revoked", "Success"), ("Revoked", "Success")]
    keys = [seen.headers["Idempotency-Key"] for seen in review.directory.seen]
    assert len(keys) == 4 and len(set(keys)) == 4  # each retry is a new attempt, not a replay
    trail = [(r.user_name, r.computer_ip, r.object_id, r.details)
             for r in review.harness.audit("Force Workflow Status")]
    assert trail == [("grace", "127.0.0.1", review.campaign_id,
                      f"retry enforcement for {key} (run {review.run(key).id})") for key in ("ada|Git", "barbara|CRM")]
    again = httpx.get(review.url + retry, cookies=grace)
    assert "nothing to retry" in again.text and 'id="confirm"' not in again.text


def test_an_auditor_has_no_retry_button_and_is_refused_and_the_api_asks_for_a_write_token(revoking: Revoking) -> None:
    review, ida = revoking, revoking.signed("ida")
    page = review.tab(ida)
    assert link(page, "history-export") is not None and link(page, "history-retry") is None
    retry = f"{review.url}/campaigns/{review.campaign_id}/retry-enforcement"
    assert httpx.get(retry, cookies=ida).status_code == 403
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]  # sign-out form
    refused = httpx.post(retry, data={"csrf": csrf, "cycle": str(review.run("ada|Git").launch_id)}, cookies=ida)
    assert refused.status_code == 403 and "auditors read campaigns" in refused.text
    assert httpx.post(retry, data={"cycle": "1"}).headers["location"] == "/sign-in"

    api = f"{review.url}/api/campaigns/{review.campaign_id}/retry-enforcement"
    for role, scope in (("auditor", "read"), ("operator", "read")):
        token = review.harness.api_token(role, scope)
        assert httpx.post(api, headers={"Authorization": f"Bearer {token}"}).status_code == 403
    assert review.harness.audit("Force Workflow Status") == []
    assert {row["Result"] for row in rows(review.harness, review.campaign_id).values()} >= {"Failure"}

    review.up[0] = True
    token = review.harness.api_token("operator", "write", user="olga")
    review.harness.campaigns.pause(review.campaign_id, review.harness.actor)
    paused = httpx.post(api, headers={"Authorization": f"Bearer {token}"})  # retried runs would revoke at once
    assert paused.status_code == 409 and "resume it first" in paused.json()["detail"]
    review.harness.campaigns.resume(review.campaign_id, review.harness.actor)
    answer = httpx.post(api, json={"cycle": review.run("ada|Git").launch_id},
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.json()["retried"] == 2
    review.harness.run_to_idle()
    assert {row["Result"] for key, row in rows(review.harness, review.campaign_id).items()
            if key in (("ada", "Git"), ("barbara", "CRM"))} == {"Success"}
    assert {r.user_name for r in review.harness.audit("Force Workflow Status")} == {"olga"}
    journey = review.harness.create("name: Plain\nworkflow:\n  nodes:\n    - {id: start, type: left_campaign}\n")
    elsewhere = httpx.post(f"{review.url}/api/campaigns/{journey}/retry-enforcement",
                           headers={"Authorization": f"Bearer {token}"})
    assert elsewhere.status_code == 404 and "no access_review campaign" in elsewhere.json()["detail"]


def test_an_abandoned_download_ends_its_read_transaction_at_once(revoking: Revoking) -> None:
    """A client that goes away mid-download: the export's generator is closed (its transaction rolled back, its
    connection back in the pool) when the answer ends, not whenever the garbage collector gets to it."""
    import asyncio

    from starlette.requests import ClientDisconnect

    from campaignkit.plugins.access_review.export import ClosingStream
    from campaignkit.plugins.access_review.history import HistoryQuery, history_csv

    engine = revoking.harness.runtime.engine
    chunks = history_csv(revoking.harness.runtime, HistoryQuery(revoking.campaign_id, limit=None), rows_per_chunk=1)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)
        if len(sent) == 3:  # the start, the header, then the first row: the client is gone
            assert engine.pool.checkedout() == 1  # the export is reading
            raise OSError("connection reset by peer")

    async def receive() -> Any:
        await asyncio.sleep(60)

    scope = {"type": "http", "asgi": {"spec_version": "2.4"}}
    with pytest.raises(ClientDisconnect):
        asyncio.run(ClosingStream(chunks, media_type="text/csv")(scope, receive, send))
    assert engine.pool.checkedout() == 0 and chunks.gi_frame is None  # closed, not left for the collector


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the pages do not depend on the database
def test_in_a_browser_an_auditor_exports_and_an_operator_retries(revoking: Revoking, page: Any,
                                                                 tmp_path: Path) -> None:
    review = revoking

    def sign_in(name: str) -> None:
        page.goto(f"{review.url}/sign-in")
        page.fill("#name", name)
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        page.goto(f"{review.url}/campaigns/{review.campaign_id}")
        page.click("nav.tabs >> text=Run History")

    sign_in("ida")
    page.select_option("#h-status", "Revoked")
    page.click("#h-show")
    assert page.locator("#history-retry").count() == 0
    with page.expect_download() as download:
        page.click("#history-export")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".csv"
    header, *exported = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert header == COLUMNS and sorted(row[:2] for row in exported) == [["ada", "Git"], ["barbara", "CRM"]]
    page.click("#sign-out")

    sign_in("grace")
    page.screenshot(path=str(tmp_path / "run-history-controls.png"), full_page=True)
    page.click("#history-retry")
    assert "2 revocation(s)" in page.locator("#consequence").inner_text()
    page.screenshot(path=str(tmp_path / "retry-confirmation.png"))
    review.up[0] = True
    page.click("#confirm")
    page.wait_for_load_state()
    assert "2 failed enforcement(s) sent back" in page.locator("#history-retried").inner_text()
    review.harness.run_to_idle()
    page.reload()
    results = page.locator("#run-history tbody tr td:last-child").all_inner_texts()
    assert results.count("Success") >= 2 and "Failure" not in results
