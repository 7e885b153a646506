"""One idempotency key, one request: whatever a side effect sends is fixed at its visit's first attempt, so a retry
or a redelivery after a worker died sends the same bytes under the same key (HTTP plugins and e-mail alike)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from campaignkit.core.engine.worker import Worker
from campaignkit.core.testing import HttpReceiver, free_port

HOOKED = """
name: Keyed
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: act}}
    - id: act
      type: {step}
      config: {config}
      retry: {{max_attempts: 5, backoff_seconds: 60, backoff_factor: 1}}
      next: done
    - {{id: done, type: left_campaign}}
"""
FIELD = HOOKED.format(step="update_custom_field", config="{updater: http, field: Owner, value: 'Approved {{ now }}'}")
ENFORCE = HOOKED.format(step="enforcement_action",
                        config="{action: webhook, params: {user: '{{ target.key }}', when: '{{ now.isoformat() }}'}}")
MAIL = HOOKED.format(step="send_message", config="{channel: smtp, to: '{{ target.email }}', subject: 'Hi {{ now }}', "
                                                 "text: 'Sent {{ now.isoformat() }}', html: '<p>{{ now }}</p>'}")


def http_runtime(make_runtime: Any, url: str) -> Any:
    endpoint = {"url": url + "/targets/{{ target_key | segment }}", "method": "PUT", "retries": 0}
    action = {"url": url + "/access/{{ params.user | segment }}", "method": "DELETE", "retries": 0,
              "body": '{"user": {{ params.user | tojson }}, "when": {{ params.when | tojson }}}'}
    return make_runtime(plugins={"config": {"http": endpoint, "webhook_enforcement": action}})


@pytest.mark.parametrize("definition", [FIELD, ENFORCE], ids=["http-field-updater", "webhook-enforcement"])
def test_a_retried_http_call_sends_the_same_bytes_under_the_same_key(make_runtime: Any, actor: Any, tmp_path: Any,
                                                                     clock: Any, definition: str) -> None:
    from conftest import Harness

    failures = iter([503, 503])
    with HttpReceiver(lambda seen: (next(failures, 204), b"")) as receiver:
        harness = Harness(http_runtime(make_runtime, receiver.url), actor, tmp_path)
        [run] = harness.run_campaign(definition, "key\nada/b\n")
        for _ in range(2):
            clock.advance(timedelta(minutes=1))  # the backoff; the clock has moved on by each attempt
            harness.run_to_idle()
        seen = receiver.seen
    assert len(seen) == 3 and len({s.body for s in seen}) == 1 and len({s.path for s in seen}) == 1
    assert len({s.headers["Idempotency-Key"] for s in seen}) == 1
    assert b"2030-01-07" in seen[0].body and b"09:00:00" in seen[0].body  # the first attempt's time, kept
    [run] = harness.runs(run.campaign_id)
    assert run.status == "completed"


class Deferring:
    """An SMTP server that defers the first DATA it is given (451), then accepts, keeping every message's bytes."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.original_content or envelope.content)
        return "451 try again later" if len(self.received) == 1 else "250 OK"


@pytest.fixture
def deferring_smtp() -> Iterator[tuple[Deferring, int]]:
    handler, port = Deferring(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_a_retried_email_is_the_same_message_byte_for_byte(make_runtime: Any, actor: Any, tmp_path: Any, clock: Any,
                                                          deferring_smtp: tuple[Deferring, int]) -> None:
    from conftest import Harness

    handler, port = deferring_smtp
    runtime = make_runtime(plugins={"config": {"smtp": {"host": "127.0.0.1", "port": port, "security": "none",
                                                        "sender": "Campaigns <campaigns@example.org>"}}})
    harness = Harness(runtime, actor, tmp_path)
    harness.run_campaign(MAIL, "key,email\nk1,ada@example.org\n")
    clock.advance(timedelta(minutes=5))
    harness.run_to_idle()
    assert len(handler.received) == 2 and handler.received[0] == handler.received[1]
    parsed = email.message_from_bytes(handler.received[1], policy=email.policy.default)
    assert parsed["Date"] == "Mon, 07 Jan 2030 09:00:00 -0000"  # when first composed, not when the retry ran
    assert parsed["Message-ID"].startswith("<") and "Sent 2030-01-07T09:00:00+00:00" in handler.received[1].decode()


def test_a_step_redelivered_after_its_worker_died_sends_the_same_bytes(make_runtime: Any, actor: Any, tmp_path: Any,
                                                                      clock: Any, monkeypatch: Any) -> None:
    from conftest import Harness

    with HttpReceiver(lambda seen: (204, b"")) as receiver:
        harness = Harness(http_runtime(make_runtime, receiver.url), actor, tmp_path)
        campaign_id = harness.create(FIELD)
        harness.launch(campaign_id, harness.csv("key\nada\n"))

        def dies(*args: Any, **kwargs: Any) -> Any:  # the worker dies after the request, before its batch write
            raise SystemExit("killed")

        doomed = Worker(harness.runtime)
        monkeypatch.setattr(doomed, "_write", dies)
        with pytest.raises(SystemExit):
            doomed.run_until_idle()
        monkeypatch.undo()
        clock.advance(timedelta(seconds=harness.runtime.settings.worker.lease_seconds + 90))
        harness.run_to_idle()  # another worker reclaims the run once the lease has expired
        seen = receiver.seen
    assert len(seen) == 2 and seen[0].body == seen[1].body and seen[0].path == seen[1].path
    assert seen[0].headers["Idempotency-Key"] == seen[1].headers["Idempotency-Key"]
    [run] = harness.runs(campaign_id)
    assert run.status == "completed"
    [act] = [s for s in harness.steps(run.id) if s.node_id == "act"]
    assert act.outcome == "ok" and act.started_at == clock.now() - timedelta(
        seconds=harness.runtime.settings.worker.lease_seconds + 90)


def test_a_retried_digest_is_the_same_message_byte_for_byte(make_runtime: Any, actor: Any, tmp_path: Any,
                                                           clock: Any, deferring_smtp: tuple[Deferring, int]) -> None:
    from conftest import Harness
    from review_support import AUDIENCE, REVIEW

    from campaignkit.plugins.access_review.digests import DigestSender

    handler, port = deferring_smtp
    runtime = make_runtime(plugins={"config": {"smtp": {"host": "127.0.0.1", "port": port, "security": "none",
                                                        "sender": "reviews@example.org"}}})
    harness = Harness(runtime, actor, tmp_path)
    audience = AUDIENCE.splitlines()
    only_grace = "\n".join([audience[0], *(line for line in audience[1:] if line.endswith("grace@example.org"))])
    harness.run_campaign(REVIEW.format(path=harness.csv(only_grace + "\n"), extra="  digest: true"))
    assert DigestSender(runtime).send_due().retrying == 1  # deferred by the server
    clock.advance(timedelta(minutes=2))
    assert DigestSender(runtime).send_due().sent == 1
    assert len(handler.received) == 2 and handler.received[0] == handler.received[1]


def test_the_file_channel_writes_the_same_message_when_a_step_is_redelivered(make_runtime: Any, actor: Any,
                                                                            tmp_path: Any, clock: Any,
                                                                            monkeypatch: Any) -> None:
    from conftest import Harness

    harness = Harness(make_runtime(), actor, tmp_path)
    campaign_id = harness.create(MAIL.replace("channel: smtp", "channel: file"))
    harness.launch(campaign_id, harness.csv("key,email\nk1,ada@example.org\n"))
    doomed = Worker(harness.runtime)
    monkeypatch.setattr(doomed, "_write", lambda *args, **kwargs: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        doomed.run_until_idle()
    monkeypatch.undo()
    [written] = list((harness.runtime.settings.var_dir / "outbox").glob("*.eml"))
    first = written.read_bytes()
    clock.advance(timedelta(seconds=harness.runtime.settings.worker.lease_seconds + 60))
    harness.run_to_idle()
    assert [p.name for p in (harness.runtime.settings.var_dir / "outbox").glob("*.eml")] == [written.name]
    assert written.read_bytes() == first and b"Date: Mon, 07 Jan 2030 09:00:00 -0000" in first
    assert harness.runs(campaign_id)[0].status == "completed"
