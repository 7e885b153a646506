"""The hris audience source against a real HTTP server on 127.0.0.1, through campaignkit's launch."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from conftest import PREFIX, TOKEN, HrApi, employee, path_of

from campaignkit.core import AudienceError, ConfigurationError
from campaignkit.core.testing import HttpReceiver

CAMPAIGN = """
name: Security training
audience:
  source: hris
  endpoint: /employees
  key: employee_id
  filters: {status: active, department: [Sales, Support]}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: by_department}
    - {id: by_department, type: branch, config: {condition: "target.department == 'Sales'"},
       edges: {"true": sales, "false": others}}
    - {id: sales, type: left_campaign}
    - {id: others, type: left_campaign}
"""


def launches(ck_campaign: Any, campaign_id: str) -> int:
    from campaignkit.core.db import reading
    from campaignkit.core.schema import launches

    with reading(ck_campaign.runtime.engine) as conn:
        return len(conn.execute(launches.select().where(launches.c.campaign_id == campaign_id)).all())


def test_launch_creates_one_run_per_employee_across_pages(ck_campaign: Any, hr_api: HrApi) -> None:
    hr_api.pages[1][0]["department"] = "Support"
    campaign_id = ck_campaign.create(CAMPAIGN)
    assert ck_campaign.launch(campaign_id) == 7
    ck_campaign.run_to_idle()

    runs = {run.target_key: run for run in ck_campaign.runs(campaign_id)}
    expected = {record["employee_id"]: record for page in hr_api.pages for record in page}
    assert runs.keys() == expected.keys()
    for key, run in runs.items():
        assert run.target == expected[key]  # every attribute, nested ones too
        assert run.status == "completed"
    taken = {step.node_id: step.edge for step in ck_campaign.steps(runs["e4"].id)}
    assert taken["by_department"] == "false"  # attributes drive the workflow

    assert len(hr_api.seen) == 3  # three pages, each asked for once
    first = hr_api.seen[0]
    assert (first.method, path_of(first)) == ("GET", f"{PREFIX}/employees")
    assert first.query == {"status": ["active"], "department": ["Sales", "Support"], "limit": ["3"]}
    assert [seen.query.get("cursor") for seen in hr_api.seen] == [None, ["1"], ["2"]]
    for seen in hr_api.seen:
        assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
        assert seen.headers["Accept"] == "application/json"


def test_targets_stream_page_by_page(ck_runtime: Any, hr_api: HrApi, tmp_path: Any) -> None:
    source = ck_runtime.registry.audience_source("hris", ck_runtime)
    targets = source.targets({"source": "hris", "endpoint": "employees/", "key": "employee_id"}, tmp_path)
    assert hr_api.seen == []  # nothing is fetched before the launch asks for the first target
    first = next(targets)
    assert (first.key, first.line) == ("e1", 1)
    assert len(hr_api.seen) == 1  # the first target arrives before the second page is requested
    rest = list(targets)
    assert [t.key for t in rest] == ["e2", "e3", "e4", "e5", "e6", "e7"] and len(hr_api.seen) == 3


def test_record_without_key_rolls_back_the_whole_launch(ck_campaign: Any, hr_api: HrApi) -> None:
    del hr_api.pages[1][1]["employee_id"]
    campaign_id = ck_campaign.create(CAMPAIGN)
    with pytest.raises(AudienceError) as caught:
        ck_campaign.launch(campaign_id)
    assert str(caught.value) == ("hris: /employees page 2, record index 1: no 'employee_id' field, or it is empty "
                                 "(the audience key)")
    assert ck_campaign.runs(campaign_id) == []  # page 1's three runs were rolled back with the rest
    assert launches(ck_campaign, campaign_id) == 0
    assert ck_campaign.campaigns.get(campaign_id)["state"] == "draft"
    assert ck_campaign.audit("Workflow Started") == []


def test_duplicate_key_names_both_places(ck_campaign: Any, hr_api: HrApi) -> None:
    hr_api.pages[2][1] = employee(2)
    campaign_id = ck_campaign.create(CAMPAIGN)
    with pytest.raises(AudienceError, match=r"page 3, record index 1: duplicate key 'e2' \(first at page 1, "
                                            r"record index 1\)"):
        ck_campaign.launch(campaign_id)
    assert ck_campaign.runs(campaign_id) == []


def test_rejected_token_fails_the_launch_without_showing_it(ck_campaign: Any, hr_api: HrApi,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    hr_api.token = "the-server-expects-another-token"
    campaign_id = ck_campaign.create(CAMPAIGN)
    with caplog.at_level(logging.DEBUG), pytest.raises(AudienceError) as caught:
        ck_campaign.launch(campaign_id)
    message = str(caught.value)
    assert f"{PREFIX}/employees answered HTTP 401" in message and "plugins.config.hris.token" in message
    assert "invalid_token" in message  # what the server said, scrubbed
    assert TOKEN not in message and TOKEN not in caplog.text
    assert hr_api.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"  # it was sent, just not shown
    assert ck_campaign.runs(campaign_id) == []


def test_next_link_to_another_host_is_refused(ck_campaign: Any, hr_api: HrApi) -> None:
    with HttpReceiver() as other:  # a second server: the same host, another port
        elsewhere = HrApi(other, [[employee(99)]])
        hr_api.next_links[0] = f"{elsewhere.url}{PREFIX}/employees"
        campaign_id = ck_campaign.create(CAMPAIGN)
        with pytest.raises(AudienceError, match=r"page 1: the next link leaves the configured host"):
            ck_campaign.launch(campaign_id)
    assert elsewhere.seen == []  # the token never went there


def test_next_link_back_to_an_earlier_page_stops(ck_campaign: Any, hr_api: HrApi) -> None:
    hr_api.next_links[1] = "?cursor=1"
    campaign_id = ck_campaign.create(CAMPAIGN)
    with pytest.raises(AudienceError, match=r"page 3: the next link repeats an earlier page"):
        ck_campaign.launch(campaign_id)
    assert len(hr_api.seen) == 2


@pytest.mark.parametrize(("audience", "expected"), [
    ("{source: hris, key: employee_id}", "audience.endpoint: Field required"),
    ("{source: hris, endpoint: 'https://elsewhere.example/x', key: employee_id}",
     "audience.endpoint: Value error, must be a path below plugins.config.hris.base_url"),
    ("{source: hris, endpoint: /employees, filter: {a: b}}", "audience.filter: Extra inputs are not permitted"),
    ("{source: hris, endpoint: /employees, filters: {limit: 5}}", "audience.filters.limit: set by"),
])
def test_bad_audience_spec_names_the_key(ck_campaign: Any, hr_api: HrApi, audience: str, expected: str) -> None:
    definition = CAMPAIGN.replace(CAMPAIGN[CAMPAIGN.index("audience:"):CAMPAIGN.index("workflow:")],
                                  f"audience: {audience}\n")
    campaign_id = ck_campaign.create(definition)
    with pytest.raises(AudienceError, match=re.escape(expected)):
        ck_campaign.launch(campaign_id)
    assert hr_api.seen == []


@pytest.mark.parametrize(("change", "expected"), [
    ({"page_size": 0}, "plugins.config.hris.page_size"),
    ({"base_url": "http://hr.example.org/api"}, "plugins.config.hris.base_url"),
    ({"base_url": "https://user:pw@hr.example.org/api"}, "must not carry credentials"),
    ({"token": "two words-secret-value"}, "plugins.config.hris.token"),
    ({"timeout": 5}, "plugins.config.hris.timeout"),
])
def test_bad_configuration_names_the_key(ck_make_runtime: Any, change: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ck_make_runtime(plugins={"config": {"hris": change}})
    message = str(caught.value)
    assert expected in message
    assert "secret-value" not in message and ":pw@" not in message
