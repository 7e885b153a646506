"""The `webhook` enforcement action and the `http` field updater against real HTTP(S) receivers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from campaignkit.core import (
    ConfigurationError,
    EnforcementRequest,
    EnforcementResult,
    FieldUpdate,
    PermanentStepError,
    StepError,
)
from campaignkit.core.db.schema import runs, step_records
from campaignkit.core.engine.events import send_event
from campaignkit.core.testing import HttpReceiver, Seen, answer_in_turn
from campaignkit.plugins.access_review.history import HistoryQuery, history_page

TOKEN = "Bearer tok-0123456789-very-secret"
SECRET = "hmac-secret-0123456789abcdef"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as server:
        yield server


@pytest.fixture
def https_receiver(tls: tuple[ssl.SSLContext, Path]) -> Iterator[HttpReceiver]:
    server = HttpReceiver(tls=tls[0])
    with server:
        yield server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def verifies(seen: Seen) -> bool:
    """What a receiver does: recompute HMAC-SHA256 over timestamp "." body with the shared secret."""
    timestamp = seen.headers["X-Campaignkit-Timestamp"]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + seen.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(seen.headers["X-Campaignkit-Signature"], "sha256=" + expected)


ADA_GIT = EnforcementRequest(
    target_key="ada|Git", params={"application": "Git", "user": "ada"}, idempotency_key="idem-1", run_id=7,
    campaign_id="c-1",
    target={"user": "ada", "user_email": "ada@example.org", "application": "Git", "approver": "linus@example.org"},
)
FIELD = FieldUpdate(target_key="ada|Git", field="Campaigns Approval", value="Revoked", idempotency_key="idem-2",
                    run_id=7, campaign_id="c-1", at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
                    metadata={"approver": "linus@example.org"})


@pytest.fixture
def action(make_runtime: Any) -> Callable[..., Any]:
    def make(url: str, **config: Any) -> Any:
        table = {"url": url, "headers": {"Authorization": TOKEN}, "retries": 0, "retry_backoff_seconds": 0,
                 **config}
        runtime = make_runtime(plugins={"config": {"webhook_enforcement": table}})
        return runtime.registry.enforcement_action("webhook", runtime)

    return make


@pytest.fixture
def updater(make_runtime: Any) -> Callable[..., Any]:
    def make(url: str, **config: Any) -> Any:
        table = {"url": url, "headers": {"Authorization": TOKEN}, "retries": 0, "retry_backoff_seconds": 0,
                 **config}
        runtime = make_runtime(plugins={"config": {"http": table}})
        return runtime.registry.field_updater("http", runtime)

    return make


def no_secrets(text: str) -> None:
    assert TOKEN not in text and "tok-0123456789" not in text and SECRET not in text


# --- webhook enforcement ------------------------------------------------------------------------------


def test_webhook_posts_a_signed_json_request_per_application(action: Any, receiver: HttpReceiver) -> None:
    webhook = action(receiver.url + "/apps/{{ params.application | urlencode }}/revoke", secret=SECRET)
    result = webhook.enforce(ADA_GIT)
    assert result == EnforcementResult(removed=True, detail={"status": 200, "endpoint": receiver.url +
                                                             "/apps/Git/revoke"})
    [seen] = receiver.seen
    assert (seen.method, seen.path) == ("POST", "/apps/Git/revoke")
    assert seen.headers["Authorization"] == TOKEN
    assert seen.headers["Idempotency-Key"] == "idem-1"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["User-Agent"].startswith("campaignkit/")
    assert verifies(seen)
    assert seen.json() == {"action": "remove_access", "params": {"application": "Git", "user": "ada"},
                           "target": dict(ADA_GIT.target), "target_key": "ada|Git", "idempotency_key": "idem-1",
                           "run_id": 7, "campaign_id": "c-1"}
    no_secrets(repr(webhook.config))


def test_webhook_delete_with_a_body_template(action: Any, receiver: HttpReceiver) -> None:
    webhook = action(receiver.url + "/groups/{{ params.application }}/members/{{ params.user | urlencode }}",
                     method="delete", body='{"email": {{ target.user_email | tojson }}, "run": {{ run_id }}}')
    assert webhook.enforce(ADA_GIT).removed
    [seen] = receiver.seen
    assert (seen.method, seen.path) == ("DELETE", "/groups/Git/members/ada")
    assert seen.json() == {"email": "ada@example.org", "run": 7}
    assert "X-Campaignkit-Signature" not in seen.headers  # no secret configured


def test_webhook_refusal_means_not_removed(action: Any, receiver: HttpReceiver) -> None:
    receiver.answer = lambda seen: (403, b'{"error": "user is owner of the repository"}')
    result = action(receiver.url + "/revoke", secret=SECRET).enforce(ADA_GIT)
    assert result == EnforcementResult(removed=False, detail={
        "status": 403, "body": '{"error": "user is owner of the repository"}'})
    assert len(receiver.seen) == 1  # a refusal is not retried within the call


def test_webhook_can_treat_not_found_as_already_removed(action: Any, receiver: HttpReceiver) -> None:
    receiver.answer = lambda seen: (404, b"no such member")
    webhook = action(receiver.url + "/members/{{ params.user }}", method="DELETE", absent_statuses=[404])
    assert webhook.enforce(ADA_GIT) == EnforcementResult(removed=True, detail={"status": 404,
                                                                               "already_absent": True})


def test_webhook_retries_a_busy_receiver_with_the_same_key_and_fresh_signatures(
        action: Any, receiver: HttpReceiver) -> None:
    receiver.answer = answer_in_turn(503, 502)
    assert action(receiver.url + "/revoke", secret=SECRET, retries=2).enforce(ADA_GIT).removed
    assert len(receiver.seen) == 3
    assert {s.headers["Idempotency-Key"] for s in receiver.seen} == {"idem-1"}
    assert all(verifies(s) for s in receiver.seen)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_webhook_server_errors_are_temporary(action: Any, receiver: HttpReceiver, status: int) -> None:
    receiver.answer = lambda seen: (status, b"down")
    with pytest.raises(StepError) as caught:
        action(receiver.url + "/revoke", retries=1).enforce(ADA_GIT)
    assert caught.value.temporary and f"HTTP {status}" in str(caught.value)
    assert len(receiver.seen) == 2
    no_secrets(str(caught.value))


@pytest.mark.parametrize("retry_after", ["120", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_a_receiver_asking_to_wait_is_not_asked_again_now(action: Any, updater: Any, receiver: HttpReceiver,
                                                          retry_after: str) -> None:
    receiver.answer = lambda seen: (429, b"slow down", {"Retry-After": retry_after})
    with pytest.raises(StepError) as revoking:
        action(receiver.url + "/revoke", retries=3).enforce(ADA_GIT)
    with pytest.raises(StepError) as updating:
        updater(receiver.url + "/accounts", retries=3).update(FIELD)
    assert len(receiver.seen) == 2  # one attempt each: the in-call retries would only be refused again
    for caught in (revoking, updating):
        wait = caught.value.retry_after
        assert caught.value.temporary and wait is not None
        assert wait == 120 if retry_after == "120" else wait > 365 * 24 * 3600  # the engine waits at least this


def test_webhook_without_a_receiver_is_temporary(action: Any) -> None:
    with pytest.raises(StepError) as caught:
        action(f"http://127.0.0.1:{closed_port()}/revoke?token=abc").enforce(ADA_GIT)
    assert caught.value.temporary and "token=abc" not in str(caught.value)


def test_webhook_over_https_with_a_private_ca(action: Any, https_receiver: HttpReceiver,
                                              tls: tuple[ssl.SSLContext, Path]) -> None:
    assert action(https_receiver.url + "/revoke", ca_file=str(tls[1])).enforce(ADA_GIT).removed
    with pytest.raises(StepError) as caught:  # without the CA the server cannot be trusted; retrying won't help
        action(https_receiver.url + "/revoke").enforce(ADA_GIT)
    assert not caught.value.temporary and "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert len(https_receiver.seen) == 1


@pytest.mark.parametrize(("user", "problem"), [
    ("../admin", ". or .. segment"), ("ada lovelace", "spaces or control characters")])
def test_webhook_refuses_urls_a_target_value_would_bend(action: Any, receiver: HttpReceiver, user: str,
                                                        problem: str) -> None:
    webhook = action(receiver.url + "/members/{{ params.user }}")
    with pytest.raises(PermanentStepError, match=problem):
        webhook.enforce(EnforcementRequest(**{**ADA_GIT.__dict__, "params": {"application": "Git", "user": user}}))
    assert receiver.seen == []


def test_webhook_template_errors_are_permanent(action: Any, receiver: HttpReceiver) -> None:
    with pytest.raises(PermanentStepError, match="body template error"):
        action(receiver.url + "/r", body='{"x": {{ target.department | tojson }}}').enforce(ADA_GIT)
    with pytest.raises(PermanentStepError, match="valid JSON"):
        action(receiver.url + "/r", body='{"user": {{ params.user }}}').enforce(ADA_GIT)  # no tojson: ada unquoted
    assert receiver.seen == []


# --- http field updater -------------------------------------------------------------------------------


def test_http_updater_puts_the_field_to_the_inventory(updater: Any, receiver: HttpReceiver) -> None:
    updater(receiver.url + "/api/accounts/{{ target_key | urlencode }}/fields").update(FIELD)
    [seen] = receiver.seen
    assert (seen.method, seen.path) == ("PUT", "/api/accounts/ada%7CGit/fields")
    assert seen.headers["Authorization"] == TOKEN and seen.headers["Idempotency-Key"] == "idem-2"
    assert seen.json() == {"field": "Campaigns Approval", "value": "Revoked", "at": "2024-05-01T12:00:00+00:00",
                           "approver": "linus@example.org", "campaign_id": "c-1", "run_id": 7}


def test_http_updater_with_patch_and_a_body_template(updater: Any, receiver: HttpReceiver) -> None:
    body = '{"fields": {{ {field: value} | tojson }}, "by": {{ approver | tojson }}}'
    updater(receiver.url + "/accounts", method="patch", content_type="application/merge-patch+json",
            body=body).update(FIELD)
    [seen] = receiver.seen
    assert seen.method == "PATCH" and seen.headers["Content-Type"] == "application/merge-patch+json"
    assert seen.json() == {"fields": {"Campaigns Approval": "Revoked"}, "by": "linus@example.org"}


def test_http_updater_refusal_is_permanent_and_names_the_status(updater: Any, receiver: HttpReceiver) -> None:
    receiver.answer = lambda seen: (422, b'{"error": "unknown field"}')
    with pytest.raises(PermanentStepError) as caught:
        updater(receiver.url + "/accounts?api_key=xyz", retries=3).update(FIELD)
    message = str(caught.value)
    assert "HTTP 422" in message and "unknown field" in message and "api_key" not in message
    no_secrets(message)
    assert len(receiver.seen) == 1


def test_http_updater_recovers_from_a_server_error(updater: Any, receiver: HttpReceiver) -> None:
    receiver.answer = answer_in_turn(500)
    updater(receiver.url + "/accounts", retries=1).update(FIELD)
    assert [s.json()["value"] for s in receiver.seen] == ["Revoked", "Revoked"]


def test_http_updater_failures_without_an_answer_are_temporary(updater: Any, receiver: HttpReceiver) -> None:
    with pytest.raises(StepError) as caught:
        updater(f"http://127.0.0.1:{closed_port()}/accounts").update(FIELD)
    assert caught.value.temporary and not isinstance(caught.value, PermanentStepError)
    receiver.answer = lambda seen: (502, b"bad gateway")
    with pytest.raises(StepError) as caught:
        updater(receiver.url + "/accounts").update(FIELD)
    assert caught.value.temporary and "HTTP 502" in str(caught.value)


# --- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "table", "problem"), [
    ("http", {"url": "http://inventory.example.org/a"}, "must use https://"),
    ("http", {"url": "https://{{ target_key }}.example.org/a"}, "scheme and host must be literal"),
    ("http", {"url": "https://user:pw@example.org/a"}, "no credentials in the URL"),
    ("http", {"url": "https://example.org/{{ target_key"}, "template syntax error"),
    ("http", {"url": "https://example.org/{{ params.user }}"}, "unknown template variable(s) params"),
    ("http", {"url": "https://example.org/a", "body": "{% if %}"}, "template syntax error"),
    ("http", {"url": "https://example.org/a", "method": "DELETE"}, "plugins.config.http.method"),
    ("http", {"url": "https://example.org/a", "headers": {"Content-Type": "x"}}, "is set by the plugin"),
    ("http", {"url": "https://example.org/a", "headers": {"X-Key": TOKEN + "\r\nX-Evil: 1"}},
     "contains control characters"),
    ("http", {"url": "https://example.org/a", "ca_file": "/nonexistent.pem"}, "plugins.config.http.ca_file"),
    ("webhook_enforcement", {"url": "http://idp.example.org/revoke"}, "must use https://"),
    ("webhook_enforcement", {"url": "https://example.org/{{ field }}"}, "unknown template variable(s) field"),
    ("webhook_enforcement", {"url": "https://example.org/a", "secret": "short"}, "at least 16 characters"),
    ("webhook_enforcement", {"url": "https://example.org/a", "secret": SECRET, "body": ""}, "needs a body"),
    ("webhook_enforcement", {"url": "https://example.org/a", "absent_statuses": [500]}, "must be 4xx"),
    ("webhook_enforcement", {"url": "https://example.org/a", "method": "GET"}, "method"),
])
def test_invalid_configuration_is_refused_at_start(make_runtime: Any, key: str, table: dict[str, Any],
                                                   problem: str) -> None:
    table = {"headers": {"Authorization": TOKEN}, **table}
    with pytest.raises(ConfigurationError) as caught:
        make_runtime(plugins={"config": {key: table}})
    assert problem in str(caught.value) and f"plugins.config.{key}" in str(caught.value)
    no_secrets(str(caught.value))


def test_the_webhook_audit_sink_and_action_keep_separate_tables(make_runtime: Any, receiver: HttpReceiver) -> None:
    runtime = make_runtime(plugins={"config": {
        "webhook": {"url": receiver.url + "/audit", "secret": SECRET},
        "webhook_enforcement": {"url": receiver.url + "/revoke"}}})
    assert runtime.registry.enforcement_action("webhook", runtime).config.url == receiver.url + "/revoke"
    assert {"webhook", "noop"} <= set(runtime.registry.names("enforcement action"))
    assert {"http", "database"} <= set(runtime.registry.names("field updater"))


# --- end to end: an access review that updates the inventory and revokes over HTTP ---------------------

AUDIENCE = """user,user_email,application,approver
ada,ada@example.org,Payroll,grace@example.org
ada,ada@example.org,Git,linus@example.org
barbara,barbara@example.org,CRM,grace@example.org
alan,alan@example.org,CRM,grace@example.org
"""
REVIEW = """
name: HTTP access review
kind: access_review
audience: {{source: csv, path: {path}}}
schedule: {{end_after: P14D}}
settings:
  channel: log
  on_revoke: revoke
  enforcement: webhook
  updater: http
"""


def test_access_review_updates_the_inventory_and_revokes_through_webhooks(
        make_runtime: Any, actor: Any, tmp_path: Path, clock: Any, receiver: HttpReceiver) -> None:
    from conftest import Harness

    barbara_busy = [503]

    def answer(seen: Seen) -> tuple[int, bytes]:
        if seen.path.startswith("/idp/"):
            if seen.path.endswith("/alan"):
                return 409, b'{"error": "alan is the last admin of CRM"}'
            if seen.path.endswith("/barbara") and barbara_busy:
                return barbara_busy.pop(), b"maintenance"
        return 200, b"{}"

    receiver.answer = answer
    runtime = make_runtime(plugins={"config": {
        "http": {"url": receiver.url + "/inventory/{{ target_key | urlencode }}", "headers": {"Authorization": TOKEN},
                 "retries": 0},
        "webhook_enforcement": {
            "url": receiver.url + "/idp/apps/{{ params.application|urlencode }}/members/{{ params.user|urlencode }}",
            "method": "DELETE", "secret": SECRET, "headers": {"X-Api-Key": TOKEN}, "retries": 0},
    }})
    harness = Harness(runtime, actor, tmp_path)
    campaign_id = harness.create(REVIEW.format(path=harness.csv(AUDIENCE)))
    harness.campaigns.launch(campaign_id, actor)
    harness.run_to_idle()
    by_key = {r.target_key: r for r in harness.runs(campaign_id)}
    send_event(runtime, by_key["ada|Payroll"].id, "approved", {"approver": "grace@example.org"})
    send_event(runtime, by_key["ada|Git"].id, "revoked", {"approver": "linus@example.org"})
    send_event(runtime, by_key["barbara|CRM"].id, "revoked", {"approver": "grace@example.org"})
    send_event(runtime, by_key["alan|CRM"].id, "revoked", {"approver": "grace@example.org"})
    harness.run_to_idle()
    clock.advance(120)  # barbara's enforcement answered 503: the step's retry policy tries again later
    harness.run_to_idle()

    page = history_page(runtime, HistoryQuery(campaign_id, limit=100))
    assert {(r["User"], r["Application"]): (r["Response Status"], r["Result"]) for r in page} == {
        ("ada", "Payroll"): ("Approved", "Success"), ("ada", "Git"): ("Revoked", "Success"),
        ("barbara", "CRM"): ("Revoked", "Success"), ("alan", "CRM"): ("Revoked", "Failure")}

    inventory = {s.path: s.json() for s in receiver.seen if s.path.startswith("/inventory/")}
    assert {path: (b["value"], b["approver"]) for path, b in inventory.items()} == {
        "/inventory/ada%7CPayroll": ("Approved", "grace@example.org"),
        "/inventory/ada%7CGit": ("Revoked", "linus@example.org"),
        "/inventory/barbara%7CCRM": ("Revoked", "grace@example.org"),
        "/inventory/alan%7CCRM": ("Revoked", "grace@example.org")}
    assert all(b["field"] == "Campaigns Approval" and b["campaign_id"] == campaign_id for b in inventory.values())
    idp = [s for s in receiver.seen if s.path.startswith("/idp/")]
    assert sorted(s.path for s in idp) == ["/idp/apps/CRM/members/alan", "/idp/apps/CRM/members/barbara",
                                           "/idp/apps/CRM/members/barbara", "/idp/apps/Git/members/ada"]
    assert all(s.method == "DELETE" and s.headers["X-Api-Key"] == TOKEN and verifies(s) for s in idp)
    assert all(s.json()["params"]["user"] in s.path for s in idp)
    barbara = [s.headers["Idempotency-Key"] for s in idp if s.path.endswith("/barbara")]
    assert len(set(barbara)) == 1  # the retry carries the same key, so the receiver can drop a repeat

    with runtime.engine.connect() as conn:
        alan_steps = conn.execute(select(step_records.c.node_id, step_records.c.outcome, step_records.c.detail)
                                  .where(step_records.c.run_id == by_key["alan|CRM"].id)).all()
        everything = json.dumps([list(r) for r in conn.execute(select(step_records)).all()], default=str)
        everything += json.dumps([list(r) for r in conn.execute(select(runs)).all()], default=str)
    enforce = next(r for r in alan_steps if r.node_id == "enforce")
    assert enforce.outcome == "failed" and "409" in enforce.detail["error"]
    assert "last admin of CRM" in enforce.detail["error"]
    no_secrets(everything)


# --- values that would add path segments --------------------------------------------------------------

VICTIM = EnforcementRequest(**{**ADA_GIT.__dict__, "params": {"application": "Payroll", "user": "victim/gone"}})


def test_a_value_with_a_slash_cannot_add_a_path_segment(action: Any, updater: Any, receiver: HttpReceiver) -> None:
    """urlencode keeps /: the request would reach /access/victim/gone/Payroll, whose 404 counted as removed."""
    receiver.answer = lambda seen: (404, b"no such route")
    template = "/access/{{ params.user | urlencode }}/{{ params.application | urlencode }}?api_key=xyz"
    with pytest.raises(PermanentStepError) as caught:
        action(receiver.url + template, method="DELETE", absent_statuses=[404]).enforce(VICTIM)
    message = str(caught.value)
    assert "4 path segments where the template has 3" in message and "segment filter" in message
    assert "api_key" not in message
    with pytest.raises(PermanentStepError, match="segment filter"):
        updater(receiver.url + "/accounts/{{ target_key | urlencode }}/fields").update(
            FieldUpdate(**{**FIELD.__dict__, "target_key": "ada/Git"}))
    assert receiver.seen == []


def test_the_segment_filter_keeps_a_value_in_its_segment(action: Any, updater: Any, receiver: HttpReceiver) -> None:
    webhook = action(receiver.url + "/access/{{ params.user | segment }}/{{ params.application | segment }}",
                     method="DELETE")
    assert webhook.enforce(VICTIM).removed
    updater(receiver.url + "/accounts/{{ target_key | segment }}/fields").update(
        FieldUpdate(**{**FIELD.__dict__, "target_key": "ada/Git?#"}))
    assert [s.path for s in receiver.seen] == ["/access/victim%2Fgone/Payroll", "/accounts/ada%2FGit%3F%23/fields"]


@pytest.mark.parametrize(("template", "user", "problem"), [
    ("/members/{{ params.user }}?notify=1", "bob?", "a ? or #"),  # would still reach bob
    ("/members/{{ params.user }}", "bob#x", "a ? or #"),
    ("/members/{{ params.user }}", "bob?x=1", "a ? or #"),
    ("/apps/{{ params.user }}/members", "", "an empty path segment"),  # /apps//members: merged slashes
])
def test_values_cannot_add_a_query_a_fragment_or_an_empty_segment(action: Any, receiver: HttpReceiver,
                                                                  template: str, user: str, problem: str) -> None:
    with pytest.raises(PermanentStepError, match=re.escape(problem)):
        action(receiver.url + template).enforce(
            EnforcementRequest(**{**ADA_GIT.__dict__, "params": {"application": "Git", "user": user}}))
    assert receiver.seen == []


def test_a_url_with_statements_is_refused_at_start(make_runtime: Any) -> None:
    table = {"url": "https://idp.example.org/{% if params.user %}members/{{ params.user | segment }}{% endif %}"}
    with pytest.raises(ConfigurationError, match=r"plugins\.config\.webhook_enforcement\.url.*no \{% %\} statements"):
        make_runtime(plugins={"config": {"webhook_enforcement": table}})


VICTIM_AUDIENCE = """user,user_email,application,approver
victim/gone,victim@example.org,Payroll,grace@example.org
"""
WEBHOOK_REVIEW = """
name: Webhook access review
kind: access_review
audience: {{source: csv, path: {path}}}
schedule: {{end_after: P14D}}
settings:
  channel: log
  on_revoke: revoke
  enforcement: webhook
"""


@pytest.mark.parametrize("path_filter", ["urlencode", "segment"])
def test_an_access_review_revokes_a_user_with_a_slash_only_by_its_own_path(
        make_runtime: Any, actor: Any, tmp_path: Path, receiver: HttpReceiver, path_filter: str) -> None:
    from conftest import Harness

    receiver.answer = lambda seen: (404, b"no such route")  # what a receiver answers for a path it does not have
    url = (receiver.url + f"/access/{{{{ params.user | {path_filter} }}}}/{{{{ params.application | {path_filter} }}}}")
    runtime = make_runtime(plugins={"config": {"webhook_enforcement": {
        "url": url, "method": "DELETE", "absent_statuses": [404], "retries": 0}}})
    harness = Harness(runtime, actor, tmp_path)
    campaign_id = harness.create(WEBHOOK_REVIEW.format(path=harness.csv(VICTIM_AUDIENCE)))
    harness.campaigns.launch(campaign_id, actor)
    harness.run_to_idle()
    [run] = harness.runs(campaign_id)
    send_event(runtime, run.id, "revoked", {"approver": "grace@example.org"})
    harness.run_to_idle()

    [row] = history_page(runtime, HistoryQuery(campaign_id, limit=10))
    if path_filter == "urlencode":
        assert (row["Response Status"], row["Result"]) == ("Revoked", "Failure")
        assert receiver.seen == []
        [enforce] = [s for s in harness.steps(run.id) if s.node_id == "enforce"]
        assert "segment filter" in enforce.detail["error"]
    else:
        assert (row["Response Status"], row["Result"]) == ("Revoked", "Success")
        assert [(s.method, s.path) for s in receiver.seen] == [("DELETE", "/access/victim%2Fgone/Payroll")]


def test_a_redirect_is_not_followed(action: Any, receiver: HttpReceiver) -> None:
    """The host is the configured one: a receiver cannot send the request (and its headers) elsewhere."""
    receiver.answer = lambda seen: (307, b"", {"Location": "https://elsewhere.example.org/revoke"})
    result = action(receiver.url + "/revoke", secret=SECRET).enforce(ADA_GIT)
    assert not result.removed and result.detail["status"] == 307
    assert [s.path for s in receiver.seen] == ["/revoke"]
