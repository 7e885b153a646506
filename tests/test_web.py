"""The web app served for real by uvicorn on 127.0.0.1: health, bearer-token API, events that wake runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from servers import serving

from campaignkit.core.db.migrate import head_revision
from campaignkit.core.web import create_app

TOKEN = "h4Qw-9XbT2kLmZ8pRv0sYc3NfG7jDa1uEo5iKq6tW"  # random, as `campaignkit init` makes them
FLOW = """
name: Web
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [clicked]}, edges: {clicked: done}}
    - {id: done, type: left_campaign}
"""


@pytest.fixture
def served(make_runtime: Any, actor: Any, tmp_path: Any) -> Iterator[tuple[str, Any]]:
    from conftest import Harness

    runtime = make_runtime(api_token=TOKEN)
    with serving(create_app(runtime)) as url:
        yield url, Harness(runtime, actor, tmp_path)


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_health_reports_the_schema(served: Any) -> None:
    url, _ = served
    assert httpx.get(f"{url}/health").json() == {"status": "ok", "revision": head_revision()}


def test_the_api_needs_the_token(served: Any) -> None:
    url, _ = served
    assert httpx.get(f"{url}/api/campaigns").status_code == 401
    assert httpx.get(f"{url}/api/campaigns", headers=auth("wrong" * 10)).status_code == 401
    assert httpx.get(f"{url}/api/campaigns", headers=auth()).json() == []


def test_listing_runs_and_posting_an_event_that_wakes_a_run(served: Any) -> None:
    url, harness = served
    campaign_id = harness.create(FLOW)
    harness.launch(campaign_id, harness.csv("key\nk1\nk2\n"))
    harness.run_to_idle()
    listed = httpx.get(f"{url}/api/campaigns/{campaign_id}/runs", params={"status": "waiting", "sort": "-id"},
                       headers=auth()).json()
    assert [r["target_key"] for r in listed] == ["k2", "k1"]
    run_id = listed[1]["id"]
    write = auth(harness.api_token("operator", "write"))
    refused = httpx.post(f"{url}/api/runs/{run_id}/events", json={"name": "clicked"}, headers=auth())
    assert refused.status_code == 403  # the deprecated shared token only reads
    posted = httpx.post(f"{url}/api/runs/{run_id}/events", json={"name": "clicked", "payload": {"via": "api"}},
                        headers=write)
    assert posted.status_code == 201
    harness.run_to_idle()
    timeline = httpx.get(f"{url}/api/runs/{run_id}", headers=auth()).json()
    last_event = timeline["run"]["context"]["last_event"]
    assert timeline["run"]["status"] == "completed" and last_event["payload"]["via"] == "api"
    assert [p["edge"] for p in timeline["path"]] == ["next", "clicked", None]
    summary = httpx.get(f"{url}/api/campaigns/{campaign_id}", headers=auth()).json()
    assert summary["runs_by_status"] == {"completed": 1, "waiting": 1}
    assert httpx.post(f"{url}/api/runs/{run_id}/events", json={"name": "clicked"}, headers=write).status_code == 409
    assert httpx.get(f"{url}/api/runs/999999", headers=auth()).status_code == 404


def test_the_api_describes_the_installed_campaign_kinds(served: Any) -> None:
    url, _ = served
    assert httpx.get(f"{url}/api/kinds").status_code == 401
    kinds = {kind["name"]: kind for kind in httpx.get(f"{url}/api/kinds", headers=auth()).json()}
    assert {"journey", "access_review"} <= set(kinds)
    assert kinds["journey"]["listing"] is None
    review = kinds["access_review"]
    assert review["listing"]["columns"] == ["User", "Application", "Approver", "Response Status", "Action Time",
                                            "Result"]
    assert review["listing"]["filters"]["result"] == ["Success", "Failure"]
    assert review["listing"]["filters"]["approver"] == []  # any value
    assert "time" in review["listing"]["sorts"] and review["console_tabs"] == ["Run History"]
    assert "assignee" in review["facets"]


def test_without_the_shared_token_only_personal_tokens_open_the_api(make_runtime: Any, actor: Any,
                                                                     tmp_path: Any) -> None:
    from conftest import Harness

    harness = Harness(make_runtime(), actor, tmp_path)
    with serving(create_app(harness.runtime)) as url:
        assert httpx.get(f"{url}/api/campaigns", headers=auth()).status_code == 401
        assert httpx.get(f"{url}/api/campaigns", headers=auth(harness.api_token("auditor", "read"))).json() == []
