"""The slack channel end to end: a campaign's send_message nodes post to a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from conftest import OK, TOKEN, WEBHOOK_PATH, webhook_url

from campaignkit.core.testing import HttpReceiver, answer_in_turn

AUDIENCE = "key,name,room\nada,Ada & co,#ada-team\n"
FLOW = """
name: Slack review
audience: {source: csv, path: audience.csv, key: key}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: notify}
    - id: notify
      type: send_message
      config:
        channel: slack
        to: "{{ target.room }}"
        subject: "Access review for {{ target.name }}"
        text: "Hello {{ target.name }}, please decide <!channel>"
      retry: {max_attempts: 3, backoff_seconds: 60}
      next: done
    - {id: done, type: left_campaign}
"""


@pytest.fixture
def ck_settings(ck_http: HttpReceiver) -> dict[str, Any]:
    config = {"webhook_url": webhook_url(ck_http), "username": "Access reviews", "icon_emoji": ":shield:"}
    return {"plugins": {"config": {"slack": config}}}


def notify_steps(ck_campaign: Any, run_id: int) -> list[Any]:
    return [step for step in ck_campaign.steps(run_id) if step.node_id == "notify"]


def everything_recorded(ck_campaign: Any, run: Any) -> str:
    """Run, step records and audit rows as text, to look for the token in."""
    rows = [run, *ck_campaign.steps(run.id), *ck_campaign.audit()]
    return json.dumps([dict(row._mapping) for row in rows], default=str)


def test_a_campaign_posts_the_rendered_message_as_json(ck_campaign: Any, ck_http: HttpReceiver) -> None:
    ck_http.answer = lambda seen: (200, b'{"ok": true, "ts": "1893920400.000100"}')

    [run] = ck_campaign.run_campaign(FLOW, AUDIENCE)

    assert run.status == "completed"
    [seen] = ck_http.seen
    assert (seen.method, seen.path) == ("POST", WEBHOOK_PATH)
    assert seen.headers["Content-Type"].startswith("application/json")
    # Target data is escaped: "<!channel>" would otherwise notify the whole room, "&" would start an entity.
    assert seen.json() == {
        "text": "*Access review for Ada &amp; co*\n\nHello Ada &amp; co, please decide &lt;!channel&gt;",
        "channel": "#ada-team", "username": "Access reviews", "icon_emoji": ":shield:",
    }
    [step] = notify_steps(ck_campaign, run.id)
    assert step.outcome == "ok"
    assert seen.headers["Idempotency-Key"] == step.idempotency_key
    assert step.detail["message_id"] == "1893920400.000100"
    assert step.detail["channel"] == "slack" and step.detail["to"] == "#ada-team"
    assert step.detail["endpoint"] == ck_http.url == f"http://127.0.0.1:{ck_http.server_port}"
    assert TOKEN not in everything_recorded(ck_campaign, run)


def test_message_id_comes_from_a_header_when_the_body_is_plain(ck_campaign: Any, ck_http: HttpReceiver) -> None:
    ck_http.answer = lambda seen: (200, b"ok", {"X-Message-Id": "msg-42"})
    [run] = ck_campaign.run_campaign(FLOW, AUDIENCE)
    assert run.status == "completed"
    assert notify_steps(ck_campaign, run.id)[0].detail["message_id"] == "msg-42"


@pytest.mark.parametrize(("status", "body", "headers"), [(500, b"internal error", {}), (503, b"", {}),
                                                         (429, b"rate_limited", {"Retry-After": "90"})])
def test_busy_or_failing_receiver_is_retried_with_the_same_key(
    ck_campaign: Any, ck_clock: Any, ck_http: HttpReceiver, caplog: pytest.LogCaptureFixture,
    status: int, body: bytes, headers: dict[str, str],
) -> None:
    caplog.set_level(logging.DEBUG)
    ck_http.answer = answer_in_turn((status, body, headers), then=OK)

    [run] = ck_campaign.run_campaign(FLOW, AUDIENCE)

    assert run.status == "active"  # parked until the retry is due, not failed
    [retrying] = notify_steps(ck_campaign, run.id)
    assert retrying.outcome == "retrying"
    assert f"HTTP {status}" in retrying.detail["error"]
    if "Retry-After" in headers:
        assert "Retry-After: 90s" in retrying.detail["error"]
    assert len(ck_http.seen) == 1

    ck_campaign.run_to_idle()
    assert len(ck_http.seen) == 1  # not due yet: the node's backoff is 60 s

    ck_clock.advance(timedelta(seconds=61))
    ck_campaign.run_to_idle()
    if "Retry-After" in headers:
        assert len(ck_http.seen) == 1  # the receiver asked for 90 s: longer than the backoff, and honoured
        ck_clock.advance(timedelta(seconds=30))
        ck_campaign.run_to_idle()

    [run] = ck_campaign.runs(run.campaign_id)
    assert run.status == "completed"
    # One ledger row per (run, node, visit): the retry replaced the "retrying" row.
    [step] = notify_steps(ck_campaign, run.id)
    assert (step.outcome, step.attempt) == ("ok", 2)
    first, second = ck_http.seen
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.json() == second.json()
    assert TOKEN not in everything_recorded(ck_campaign, run)
    assert TOKEN not in caplog.text


def test_unreachable_receiver_is_a_temporary_failure(ck_make_campaign: Any, ck_http: HttpReceiver) -> None:
    from campaignkit.core.testing import free_port

    url = f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}"  # nothing listens there
    harness = ck_make_campaign(plugins={"config": {"slack": {"webhook_url": url}}})
    [run] = harness.run_campaign(FLOW, AUDIENCE)
    [step] = notify_steps(harness, run.id)
    assert run.status == "active" and step.outcome == "retrying"
    assert "could not reach http://127.0.0.1:" in step.detail["error"]
    assert TOKEN not in everything_recorded(harness, run)
    assert ck_http.seen == []


def test_rejected_message_fails_the_run_naming_the_status(
    ck_campaign: Any, ck_http: HttpReceiver, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ck_http.answer = lambda seen: (400, b"invalid_payload")

    [run] = ck_campaign.run_campaign(FLOW, AUDIENCE)

    assert run.status == "failed"
    assert "HTTP 400" in run.error and "invalid_payload" in run.error
    [failed] = notify_steps(ck_campaign, run.id)
    assert failed.outcome == "failed"
    assert "HTTP 400: invalid_payload" in failed.detail["error"]
    assert len(ck_http.seen) == 1  # a permanent failure is not retried
    assert TOKEN not in everything_recorded(ck_campaign, run)
    assert TOKEN not in caplog.text


def test_web_api_style_error_in_a_200_answer_fails_the_step(ck_campaign: Any, ck_http: HttpReceiver) -> None:
    ck_http.answer = lambda seen: (200, b'{"ok": false, "error": "channel_not_found"}')
    [run] = ck_campaign.run_campaign(FLOW, AUDIENCE)
    assert run.status == "failed"
    assert "channel_not_found" in run.error
    assert len(ck_http.seen) == 1


def test_redirect_is_not_followed(ck_campaign: Any, ck_http: HttpReceiver) -> None:
    ck_http.answer = lambda seen: (302, b"", {"Location": "http://127.0.0.1:9/elsewhere"})
    [run] = ck_campaign.run_campaign(FLOW, AUDIENCE)
    assert run.status == "failed"
    assert "HTTP 302" in run.error
    assert [seen.path for seen in ck_http.seen] == [WEBHOOK_PATH]


def test_markup_passes_unescaped_when_escaping_is_off(ck_make_campaign: Any, ck_http: HttpReceiver) -> None:
    harness = ck_make_campaign(plugins={"config": {"slack": {"escape": False, "include_subject": False}}})
    [run] = harness.run_campaign(FLOW, AUDIENCE)
    assert run.status == "completed"
    assert ck_http.seen[0].json()["text"] == "Hello Ada & co, please decide <!channel>"
