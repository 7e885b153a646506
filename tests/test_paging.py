"""Keyset paging of the listings: GET /api/campaigns and GET /api/campaigns/{id}/runs carry the next page in a
``Link`` header (and ``X-Next-Cursor``), their bodies still bare lists; a walk meets every row once, in the order of
one big page, for every sort in both directions, ties and NULLs included; cursors are signed and tied to the filters
and the order; and the console's executions page links its next and previous pages by the last row's value and id."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Harness
from servers import serving
from sqlalchemy import update

from campaignkit.core import create_app
from campaignkit.core.accounts.roles import Role
from campaignkit.core.accounts.users import Accounts
from campaignkit.core.campaigns.queries import RUN_SORTS
from campaignkit.core.db import writing
from campaignkit.core.db.schema import runs

PASSWORD = "a long enough password"
FLOW = """
name: NAME
folder: FOLDER
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: end}}
    - {id: end, type: left_campaign}
"""
RUNS = 20
STATUSES = ("waiting", "completed", "failed")


@pytest.fixture
def site(make_runtime: Any, actor: Any, tmp_path: Path) -> Iterator[tuple[str, Harness, dict[str, str]]]:
    harness = Harness(make_runtime(), actor, tmp_path)
    Accounts(harness.runtime).add("grace", Role.OPERATOR, actor, password=PASSWORD)
    with serving(create_app(harness.runtime)) as url:
        yield url, harness, {"Authorization": f"Bearer {harness.api_token('auditor', 'read')}"}


def walk(url: str, path: str, headers: dict[str, str], **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every row of a listing, following its Link headers from the first page; and how many pages that took."""
    rows: list[dict[str, Any]] = []
    answer = httpx.get(f"{url}{path}", params=params, headers=headers)
    pages = 1
    while True:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert isinstance(body, list)  # the body is the bare list it always was
        rows += body
        link = answer.headers.get("link")
        if link is None:
            assert "x-next-cursor" not in answer.headers
            return rows, pages
        target = re.fullmatch(r'<(/[^>]+)>; rel="next"', link)
        assert target, link
        assert target.group(1).endswith("cursor=" + answer.headers["x-next-cursor"])
        assert len(body) == params["limit"] and pages < 100
        answer = httpx.get(f"{url}{target.group(1)}", headers=headers)
        pages += 1


def test_the_campaigns_are_walked_once_each_in_folder_and_name_order(site: Any) -> None:
    url, harness, headers = site
    made = [("", "zulu"), ("teama", "bravo"), ("teamb", "alpha"), ("teama", "alpha"), ("teamb", "charlie"),
            ("", "alpha"), ("teama", "charlie")]
    for folder, name in made:
        harness.create(FLOW.replace("NAME", name).replace("FOLDER", folder or '""'))
    walked, pages = walk(url, "/api/campaigns", headers, limit=2)
    assert [(row["folder"], row["name"]) for row in walked] == sorted(made) and pages == 4
    one, _ = walk(url, "/api/campaigns", headers, limit=1000)
    assert walked == one and len({row["id"] for row in walked}) == 7
    assert walked[0].keys() >= {"id", "name", "folder", "kind", "state", "version", "runs", "live_runs"}
    default = httpx.get(f"{url}/api/campaigns", headers=headers)
    assert len(default.json()) == 7 and "link" not in default.headers  # 100 by default
    assert httpx.get(f"{url}/api/campaigns", params={"limit": 0}, headers=headers).status_code == 422
    assert httpx.get(f"{url}/api/campaigns", params={"limit": 1001}, headers=headers).status_code == 422


def launched(harness: Harness) -> str:
    """A campaign of RUNS runs whose status, updated time and due time repeat (ties), due missing for some."""
    campaign_id = harness.create(FLOW.replace("NAME", "Paged").replace("FOLDER", "demo"))
    harness.launch(campaign_id, harness.csv("key\n" + "".join(f"user{i:02d}\n" for i in range(RUNS))))
    base = harness.runtime.clock.now()
    with writing(harness.runtime.engine) as conn:
        for n, run in enumerate(harness.runs(campaign_id)):
            conn.execute(update(runs).where(runs.c.id == run.id).values(
                status=STATUSES[n % 3], updated_at=base + timedelta(seconds=n % 4),
                due_at=None if n % 3 == 0 else base + timedelta(minutes=n % 5)))
    return campaign_id


def expected(rows: list[dict[str, Any]], column: str, descending: bool) -> list[int]:
    """The order the API promises: the value then id, both one way; NULL after every value ascending."""
    ordered = sorted(rows, key=lambda row: (row[column] is None, row[column] or 0, row["id"]))
    return [row["id"] for row in (reversed(ordered) if descending else ordered)]


@pytest.mark.parametrize("sort", list(RUN_SORTS))
def test_the_runs_are_walked_once_each_in_the_order_of_one_big_page_for_every_sort(site: Any, sort: str) -> None:
    url, harness, headers = site
    campaign_id = launched(harness)
    path = f"/api/campaigns/{campaign_id}/runs"
    column = RUN_SORTS[sort].name
    for order in (sort, f"-{sort}"):
        big, _ = walk(url, path, headers, sort=order, limit=1000)
        assert len(big) == RUNS
        assert [row["id"] for row in big] == expected(big, column, order.startswith("-")), order
        walked, pages = walk(url, path, headers, sort=order, limit=3)
        assert [row["id"] for row in walked] == [row["id"] for row in big] and pages == 7, order
        # Filtered too: the cursor carries on under the same filters.
        waiting, _ = walk(url, path, headers, sort=order, status="waiting", limit=3)
        assert [row["id"] for row in waiting] == [row["id"] for row in big if row["status"] == "waiting"]
        # offset still answers (deprecated), and its page links on by cursor.
        third = httpx.get(f"{url}{path}", params={"sort": order, "limit": 3, "offset": 6}, headers=headers)
        assert [row["id"] for row in third.json()] == [row["id"] for row in big[6:9]]
        following = httpx.get(f"{url}{third.headers['link'][1:].split('>')[0]}", headers=headers)
        assert "offset" not in third.headers["link"]
        assert [row["id"] for row in following.json()] == [row["id"] for row in big[9:12]]


def test_a_cursor_that_is_tampered_or_for_other_filters_is_refused_with_400(site: Any) -> None:
    url, harness, headers = site
    campaign_id = launched(harness)
    path = f"/api/campaigns/{campaign_id}/runs"
    cursor = httpx.get(f"{url}{path}", params={"sort": "-updated", "limit": 3},
                       headers=headers).headers["x-next-cursor"]
    flipped = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    for bad in ("garbage", cursor[:-3], flipped, cursor + "x"):
        answer = httpx.get(f"{url}{path}", params={"sort": "-updated", "cursor": bad}, headers=headers)
        assert answer.status_code == 400, bad
        assert answer.json()["detail"].startswith("cursor: not a cursor this API gave"), answer.text
    for other in ({"sort": "updated"}, {"sort": "-due"}, {"sort": "-updated", "status": "waiting"}):
        answer = httpx.get(f"{url}{path}", params={**other, "cursor": cursor}, headers=headers)
        assert answer.status_code == 400 and "other filters" in answer.json()["detail"], other
    both = httpx.get(f"{url}{path}", params={"sort": "-updated", "cursor": cursor, "offset": 3}, headers=headers)
    assert both.status_code == 400 and "not both" in both.json()["detail"]
    # A cursor of one listing is none of another's (each is signed for its own).
    campaigns = httpx.get(f"{url}/api/campaigns", params={"cursor": cursor}, headers=headers)
    assert campaigns.status_code == 400 and "not a cursor this API gave" in campaigns.json()["detail"]
    harness.create(FLOW.replace("NAME", "Other").replace("FOLDER", "demo"))
    campaign_cursor = httpx.get(f"{url}/api/campaigns", params={"limit": 1}, headers=headers).headers["x-next-cursor"]
    assert httpx.get(f"{url}{path}", params={"cursor": campaign_cursor}, headers=headers).status_code == 400
    assert httpx.get(f"{url}/api/campaigns", params={"cursor": campaign_cursor[:-2]},
                     headers=headers).status_code == 400
    assert httpx.get(f"{url}{path}", params={"sort": "-updated", "cursor": cursor}, headers=headers).status_code == 200


def contacts(page: str) -> list[str]:
    return re.findall(r'<tr><td><a href="/runs/\d+">([^<]*)</a>', page)


def link(page: str, name: str) -> str | None:
    found = re.search(rf'href="([^"]+)" id="{name}"', page)
    return found.group(1).replace("&amp;", "&") if found else None


@pytest.mark.parametrize(("sort", "column", "descending"), [("target", "target_key", False),
                                                            ("status", "status", False), ("-created", "id", True)])
def test_the_console_s_executions_walk_every_run_once_by_next_and_back_by_previous(
        site: Any, monkeypatch: pytest.MonkeyPatch, sort: str, column: str, descending: bool) -> None:
    from campaignkit.core.web.console import campaigns

    monkeypatch.setattr(campaigns, "PAGE_SIZE", 3)
    url, harness, headers = site
    campaign_id = launched(harness)
    big, _ = walk(url, f"/api/campaigns/{campaign_id}/runs", headers, sort=sort, limit=1000)
    keys = {row["id"]: row["target_key"] for row in big}
    everyone = [keys[run_id] for run_id in expected(big, column, descending)]
    cookies = {"ck_session": httpx.post(f"{url}/sign-in", data={"name": "grace", "password": PASSWORD})
               .cookies["ck_session"]}
    pages = [httpx.get(f"{url}/campaigns/{campaign_id}", params={"sort": sort}, cookies=cookies).text]
    assert link(pages[0], "newer") is None
    while (older := link(pages[-1], "older")) is not None:
        assert "page=" not in older and "after=" in older
        pages.append(httpx.get(f"{url}{older}", cookies=cookies).text)
        assert len(pages) < 20
    assert [key for page in pages for key in contacts(page)] == everyone and len(pages) == 7
    back = [pages[-1]]
    while (newer := link(back[-1], "newer")) is not None:
        back.append(httpx.get(f"{url}{newer}", cookies=cookies).text)
        assert len(back) < 20
    assert [contacts(page) for page in reversed(back)] == [contacts(page) for page in pages]
