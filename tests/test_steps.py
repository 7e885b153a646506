"""Each built-in step type's paths, through the real engine and database."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from campaignkit.core import Channel, Delivery, Message, hookimpl
from campaignkit.core.db.schema import targets
from campaignkit.core.engine.events import send_event


class Recorder:
    """A plugin with a channel that keeps what it is sent and an observer of workflow events."""

    __name__ = "recorder"

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        recorder = self

        class RecordingChannel(Channel):
            name = "recording"

            def send(self, message: Message) -> Delivery:
                recorder.messages.append(message)
                return Delivery(message_id=f"m-{len(recorder.messages)}")

        self.channel = RecordingChannel

    @hookimpl
    def register_channels(self) -> list[type[Channel]]:
        return [self.channel]

    @hookimpl
    def on_workflow_event(self, run: Any, name: str, payload: Any) -> None:
        self.events.append((name, dict(payload)))


def flow(*nodes: str, name: str = "Steps") -> str:
    body = "\n".join(f"    - {node}" for node in nodes)
    return f"name: {name}\nworkflow:\n  nodes:\n{body}\n"


@pytest.fixture
def recorded(make_runtime: Any, actor: Any, tmp_path: Any) -> tuple[Any, Recorder]:
    from conftest import Harness

    recorder = Recorder()
    return Harness(make_runtime(extra_plugins=(recorder,)), actor, tmp_path), recorder


def edges_taken(harness: Any, run_id: int) -> dict[str, str | None]:
    return {s.node_id: s.edge for s in harness.steps(run_id)}


def test_send_message_renders_and_delivers(recorded: Any) -> None:
    harness, recorder = recorded
    campaign_id = harness.create(flow(
        "{id: start, type: entered_campaign, next: mail}",
        "{id: mail, type: send_message, config: {channel: recording, to: '{{ target.email }}', "
        "subject: 'Hi {{ target.name }}', text: 'Plan {{ target.plan }}', html: '<b>{{ target.name }}</b>'}, "
        "next: end}",
        "{id: end, type: left_campaign}",
    ))
    harness.launch(campaign_id, harness.csv("key,email,name,plan\n1,a@x.org,<Ann>,pro\n"))
    harness.run_to_idle()
    (message,) = recorder.messages
    assert (message.to, message.subject, message.text) == ("a@x.org", "Hi <Ann>", "Plan pro")
    assert message.html == "<b>&lt;Ann&gt;</b>"  # HTML parts are autoescaped
    run = harness.runs(campaign_id)[0]
    assert run.status == "completed"
    mail = next(s for s in harness.steps(run.id) if s.node_id == "mail")
    assert mail.detail["message_id"] == "m-1" and mail.idempotency_key == f"ck:{run.id}:mail:1"


def test_branch_and_random_cohort(harness: Any) -> None:
    campaign_id = harness.create(flow(
        "{id: start, type: entered_campaign, next: split}",
        "{id: split, type: random_cohort, config: {cohorts: {big: 70, small: 30}}, edges: {big: plan, small: plan}}",
        "{id: plan, type: branch, config: {condition: \"target.plan == 'pro' and context.cohort_split == 'big'\"}, "
        "edges: {'true': yes, 'false': no}}",
        "{id: yes, type: left_campaign}",
        "{id: no, type: left_campaign}",
    ))
    rows = "\n".join(f"{i},{'pro' if i % 2 else 'free'}" for i in range(2000))
    harness.launch(campaign_id, harness.csv(f"key,plan\n{rows}\n"))
    harness.run_to_idle()
    runs = harness.runs(campaign_id)
    cohorts = Counter(run.context["cohort_split"] for run in runs)
    assert abs(cohorts["big"] / 2000 - 0.7) < 0.04  # weighted
    for run in runs[:200]:
        taken = edges_taken(harness, run.id)
        assert taken["split"] == run.context["cohort_split"]
        expected = "true" if run.target["plan"] == "pro" and run.context["cohort_split"] == "big" else "false"
        assert taken["plan"] == expected


def test_cohorts_are_deterministic_per_run(harness: Any) -> None:
    from campaignkit.core.engine.steps.flow import RandomCohort

    step = RandomCohort()
    config = step.compile({"cohorts": {"a": 1, "b": 1, "c": 2}}, harness.runtime)

    class Ctx:
        run_id = 7
        node_id = "split"

    Ctx.config = config  # type: ignore[attr-defined]
    assert len({step.execute(Ctx).edge for _ in range(20)}) == 1  # type: ignore[arg-type]


def test_time_delay_waits_exactly(harness: Any, clock: Any) -> None:
    campaign_id = harness.create(flow(
        "{id: start, type: entered_campaign, next: pause}",
        "{id: pause, type: time_delay, config: {duration: PT90M}, next: end}",
        "{id: end, type: left_campaign}",
    ))
    harness.launch(campaign_id, harness.csv("key\n1\n"))
    start = clock.now()
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    assert run.status == "waiting" and run.due_at == start + timedelta(minutes=90)
    clock.advance(timedelta(minutes=89))
    assert harness.run_to_idle().claimed == 0
    clock.advance(timedelta(minutes=1))
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    assert run.status == "completed"
    pause = next(s for s in harness.steps(run.id) if s.node_id == "pause")
    assert pause.started_at == start and pause.finished_at == start + timedelta(minutes=90)


def test_time_window_waits_for_the_next_opening_across_a_weekend_and_dst(harness: Any, clock: Any) -> None:
    # Friday 2030-03-29 18:30 in Berlin; Europe switches to summer time on Sunday 2030-03-31.
    clock.set(datetime(2030, 3, 29, 17, 30, tzinfo=UTC))
    campaign_id = harness.create(flow(
        "{id: start, type: entered_campaign, next: office}",
        "{id: office, type: time_window, config: {days: [mon, tue, wed, thu, fri], start: '09:00', end: '17:00', "
        "timezone: Europe/Berlin}, next: end}",
        "{id: end, type: left_campaign}",
    ))
    harness.launch(campaign_id, harness.csv("key\n1\n"))
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    assert run.status == "waiting"
    assert run.due_at == datetime(2030, 4, 1, 7, 0, tzinfo=UTC)  # Monday 09:00 CEST = 07:00 UTC
    clock.set(run.due_at)
    harness.run_to_idle()
    assert harness.runs(campaign_id)[0].status == "completed"


def test_wait_for_event_takes_the_event_edge_or_the_timeout(harness: Any, clock: Any) -> None:
    campaign_id = harness.create(flow(
        "{id: start, type: entered_campaign, next: wait}",
        "{id: wait, type: wait_for_event, config: {events: [clicked, reported], timeout: P2D}, "
        "edges: {clicked: clicked, next: other, timeout: late}}",
        "{id: clicked, type: left_campaign}",
        "{id: other, type: left_campaign}",
        "{id: late, type: left_campaign}",
    ))
    harness.launch(campaign_id, harness.csv("key\na\nb\nc\n"))
    harness.run_to_idle()
    a, b, c = harness.runs(campaign_id)
    send_event(harness.runtime, a.id, "clicked", {"url": "/x"})
    send_event(harness.runtime, b.id, "reported")
    assert {r.id: r.due_at for r in harness.runs(campaign_id)}[a.id] == clock.now()  # woken at once
    harness.run_to_idle()
    a, b, c = harness.runs(campaign_id)
    assert (a.status, a.current_node) == ("completed", "clicked")
    assert a.context["last_event"] == {"name": "clicked", "payload": {"url": "/x"},
                                       "at": clock.now().isoformat()}
    assert (b.status, b.current_node) == ("completed", "other")
    assert c.status == "waiting"
    clock.advance(timedelta(days=2))
    harness.run_to_idle()
    assert harness.runs(campaign_id)[2].current_node == "late"


def test_an_event_the_run_does_not_wait_for_leaves_it_waiting_without_spinning(harness: Any, clock: Any) -> None:
    campaign_id = harness.create(flow(
        "{id: start, type: entered_campaign, next: wait}",
        "{id: wait, type: wait_for_event, config: {events: [clicked], timeout: P2D}, "
        "edges: {clicked: clicked, timeout: late}}",
        "{id: clicked, type: left_campaign}",
        "{id: late, type: left_campaign}",
    ))
    harness.launch(campaign_id, harness.csv("key\na\n"))
    harness.run_to_idle()
    (run,) = harness.runs(campaign_id)
    send_event(harness.runtime, run.id, "opened")
    # Woken once to look, then left alone: the unconsumed event must not claim the run again every batch.
    assert harness.worker.run_until_idle(max_batches=5).claimed == 1
    (run,) = harness.runs(campaign_id)
    assert (run.status, run.current_node, run.due_at) == ("waiting", "wait", clock.now() + timedelta(days=2))
    send_event(harness.runtime, run.id, "clicked")
    harness.run_to_idle()
    assert harness.runs(campaign_id)[0].current_node == "clicked"


def test_update_field_enforcement_and_send_event(recorded: Any) -> None:
    harness, recorder = recorded
    campaign_id = harness.create(flow(
        "{id: start, type: entered_campaign, next: field}",
        "{id: field, type: update_custom_field, config: {field: Campaigns Approval, value: '{{ target.verdict }}'}, "
        "next: revoke}",
        "{id: revoke, type: enforcement_action, config: {action: noop, params: {group: finance}}, next: tell}",
        "{id: tell, type: send_event, config: {event: revoked, payload: {who: '{{ target.key }}'}}, next: end}",
        "{id: end, type: left_campaign}",
    ))
    harness.launch(campaign_id, harness.csv("key,verdict\nu1,Approved\n"))
    harness.run_to_idle()
    with harness.runtime.engine.connect() as conn:
        fields = conn.execute(select(targets.c.custom_fields).where(targets.c.key == "u1")).scalar_one()
    assert fields["Campaigns Approval"]["value"] == "Approved"
    (run,) = harness.runs(campaign_id)
    revoke = next(s for s in harness.steps(run.id) if s.node_id == "revoke")
    assert revoke.detail["removed"] is True and revoke.detail["would_remove"] == {"group": "finance"}
    assert recorder.events == [("revoked", {"who": "u1"})]
