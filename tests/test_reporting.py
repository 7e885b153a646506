"""Campaign reporting: runs entered, completed and failed, messages sent and events received, per day and per hour
(UTC) and per node, from the CLI, the API and the console, on SQLite and PostgreSQL.

One journey is played across midnight, through a real SMTP server (aiosmtpd on 127.0.0.1) that refuses one address
and defers another once: runs enter, one fails, one is retried after midnight, events arrive before and after, runs
complete on three days. The report gives the numbers worked out by hand below, and the same numbers as counting the
ledger itself (every step record and event of the campaign, bucketed in the test); on PostgreSQL, before and after
its deltas are folded, with part of the counts folded and part not; and after an upgrade that counts an existing
ledger.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import as_json, make_cli
from conftest import Harness
from servers import serving
from sqlalchemy import Engine, func, select

from campaignkit.core import create_app
from campaignkit.core.accounts.roles import Role
from campaignkit.core.accounts.users import Accounts
from campaignkit.core.campaigns.reporting import METRICS, campaign_report
from campaignkit.core.db import reading
from campaignkit.core.db.migrate import alembic_config, upgrade
from campaignkit.core.db.schema import events, report_counts, report_deltas, runs, step_records
from campaignkit.core.engine.events import send_event
from campaignkit.core.engine.report_tally import fold, tally
from campaignkit.core.engine.statements import ClaimedRun, StepRecord
from campaignkit.core.scheduling.housekeeping import prune_step_records
from campaignkit.core.testing import SmtpInbox

JOURNEY = """
name: Welcome
audience: {source: csv, path: audience.csv, key: key}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: mail}
    - id: mail
      type: send_message
      config: {channel: smtp, to: "{{ target.email }}", subject: "Welcome", text: "Hello"}
      retry: {max_attempts: 3, backoff_seconds: 3600}
      next: wait
    - id: wait
      type: wait_for_event
      config: {events: [clicked], timeout: P1D}
      edges: {clicked: done, timeout: done}
    - {id: done, type: left_campaign}
"""
AUDIENCE = ("key,email\nada,ada@example.org\nbob,bob@example.org\ncy,cy@example.org\n"
            "dan,dan@example.org\n")
DAY1, DAY2, DAY3 = datetime(2030, 1, 7, tzinfo=UTC), datetime(2030, 1, 8, tzinfo=UTC), datetime(2030, 1, 9, tzinfo=UTC)
PASSWORD = "a long enough password"


def refusing(inbox: SmtpInbox) -> None:
    inbox.answers["bob@example.org"] = ["550 5.1.1 No such user"]  # bob's run fails at the mail node
    inbox.answers["cy@example.org"] = ["451 4.7.1 Try again later"]  # cy's mail is retried an hour later


def play(harness: Harness, clock: Any, campaign_id: str, between: Any = lambda: None) -> None:
    """The journey, from 23:30 on Monday 7 January to 00:50 on Wednesday; ``between`` runs after midnight's work."""
    clock.advance(DAY1 + timedelta(hours=23, minutes=30) - clock.now())
    harness.launch(campaign_id, harness.csv(AUDIENCE))
    harness.run_to_idle()  # 4 runs enter; ada and dan wait, bob fails, cy's mail is deferred
    by_key = {run.target_key: run for run in harness.runs(campaign_id)}
    clock.advance(timedelta(minutes=15))
    send_event(harness.runtime, by_key["ada"].id, "clicked", {})  # 23:45, at the wait node
    clock.advance(DAY2 + timedelta(minutes=40) - clock.now())
    harness.run_to_idle()  # 00:40: cy's mail goes (then cy waits), ada completes
    between()
    clock.advance(timedelta(minutes=20))
    send_event(harness.runtime, by_key["dan"].id, "opened", {})  # 01:00: wakes dan, who waits on for a click
    harness.run_to_idle()
    clock.advance(DAY2 + timedelta(hours=23, minutes=40) - clock.now())
    harness.run_to_idle()  # dan's wait times out: completed on day 2
    clock.advance(DAY3 + timedelta(minutes=50) - clock.now())
    harness.run_to_idle()  # cy's wait times out: completed on day 3


@pytest.fixture
def journey(make_runtime: Any, actor: Any, tmp_path: Path, ck_smtp: SmtpInbox) -> Iterator[tuple[Harness, str]]:
    refusing(ck_smtp)
    harness = Harness(make_runtime(plugins={"config": {"smtp": ck_smtp.channel_config()}}), actor, tmp_path)
    yield harness, harness.create(JOURNEY)
    harness.close()


def numbers(report: Any) -> dict[datetime, dict[str, int]]:
    """The periods that counted anything, with their counts."""
    return {p.start: p.counts.as_dict() for p in report.periods if any(p.counts.values())}


def counts(entered: int = 0, completed: int = 0, failed: int = 0, sent: int = 0, events: int = 0) -> dict[str, int]:
    return {"entered": entered, "completed": completed, "failed": failed, "sent": sent, "events": events}


def hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def from_the_ledger(engine: Engine, campaign_id: str) -> tuple[Counter[Any], Counter[Any]]:
    """The counts the slow way, from every step record and event of the campaign: (hour, metric) for the campaign's
    runs, (hour, node, metric) for the nodes' visits (events aside: the ledger does not say where a run was)."""
    campaign: Counter[Any] = Counter()
    nodes: Counter[Any] = Counter()
    with reading(engine) as conn:
        steps = conn.execute(select(step_records).join(runs, runs.c.id == step_records.c.run_id)
                             .where(runs.c.campaign_id == campaign_id).order_by(step_records.c.id)).all()
        arrived = conn.execute(select(events.c.created_at).join(runs, runs.c.id == events.c.run_id)
                               .where(runs.c.campaign_id == campaign_id)).scalars().all()
    first_steps: set[int] = set()
    for step in steps:
        nodes[hour(step.started_at), step.node_id, "entered"] += 1
        if step.run_id not in first_steps:
            first_steps.add(step.run_id)
            campaign[hour(step.started_at), "entered"] += 1
        if step.outcome in ("ok", "failed"):
            ended, metric = hour(step.finished_at), "completed" if step.outcome == "ok" else "failed"
            nodes[ended, step.node_id, metric] += 1
            if step.edge is None:  # the run ended here
                campaign[ended, metric] += 1
            if step.outcome == "ok" and {"channel", "message_id"} & set(step.detail or {}):
                nodes[ended, step.node_id, "sent"] += 1
                campaign[ended, "sent"] += 1
    for at in arrived:
        campaign[hour(at), "events"] += 1
    return campaign, nodes


def assert_report_is_the_ledger(harness: Harness, campaign_id: str) -> None:
    campaign, nodes = from_the_ledger(harness.runtime.engine, campaign_id)
    whole = campaign_report(harness.runtime, campaign_id, by="hour")
    assert Counter({(at, metric): n for at, values in numbers(whole).items() for metric, n in values.items() if n}) \
        == campaign
    for node in ("start", "mail", "wait", "done"):
        report = campaign_report(harness.runtime, campaign_id, by="hour", node=node)
        assert Counter({(at, node, metric): n for at, values in numbers(report).items()
                        for metric, n in values.items() if n and metric != "events"}) \
            == Counter({key: n for key, n in nodes.items() if key[1] == node})


def rows_in(engine: Engine, table: Any) -> int:
    with reading(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_counts_per_day_hour_and_node_across_midnight_are_the_ledger_s(journey: Any, clock: Any) -> None:
    harness, campaign_id = journey
    engine = harness.runtime.engine
    postgres = engine.dialect.name == "postgresql"

    def fold_midway() -> None:  # PostgreSQL: the counts so far folded, what follows left as deltas
        assert_report_is_the_ledger(harness, campaign_id)
        fold(engine)
        assert rows_in(engine, report_deltas) == 0

    play(harness, clock, campaign_id, fold_midway)
    runs_now = {run.target_key: run.status for run in harness.runs(campaign_id)}
    assert runs_now == {"ada": "completed", "bob": "failed", "cy": "completed", "dan": "completed"}

    daily = campaign_report(harness.runtime, "Welcome")
    assert (daily.by, daily.since, daily.until) == ("day", DAY1, DAY3 + timedelta(days=1))  # it ended: to its last day
    assert [(p.start, p.counts.as_dict()) for p in daily.periods] == [
        (DAY1, counts(entered=4, failed=1, sent=2, events=1)),  # cy's mail was deferred
        (DAY2, counts(completed=2, sent=1, events=1)),  # cy's mail at 00:40; ada at 00:40 and dan at 23:40 done
        (DAY3, counts(completed=1)),
    ]
    assert daily.totals.as_dict() == counts(entered=4, completed=3, failed=1, sent=3, events=2)
    hourly = campaign_report(harness.runtime, "Welcome", by="hour")
    assert len(hourly.periods) == 26 and hourly.periods[0].start == DAY1 + timedelta(hours=23)  # zeros included
    assert numbers(hourly) == {
        DAY1 + timedelta(hours=23): counts(entered=4, failed=1, sent=2, events=1),
        DAY2: counts(completed=1, sent=1),
        DAY2 + timedelta(hours=1): counts(events=1),
        DAY2 + timedelta(hours=23): counts(completed=1),
        DAY3: counts(completed=1),
    }
    # Per node, visits: the deferred mail entered once, on day 1, and was sent on day 2; dan's extra event woke him
    # at the wait node without a second visit.
    assert {node: c.as_dict() for node, c in daily.nodes.items()} == {
        "start": counts(entered=4, completed=4),
        "mail": counts(entered=4, completed=3, failed=1, sent=3),
        "wait": counts(entered=3, completed=3, events=2),
        "done": counts(entered=3, completed=3),
    }
    mail = campaign_report(harness.runtime, campaign_id, node="mail")
    assert numbers(mail) == {DAY1: counts(entered=4, completed=2, failed=1, sent=2), DAY2: counts(completed=1, sent=1)}
    wait = campaign_report(harness.runtime, campaign_id, node="wait", by="hour", since=DAY2, until=DAY3)
    assert (wait.since, wait.until, len(wait.periods)) == (DAY2, DAY3, 24)
    assert numbers(wait) == {DAY2: counts(entered=1, completed=1), DAY2 + timedelta(hours=1): counts(events=1),
                             DAY2 + timedelta(hours=23): counts(completed=1)}
    assert {node: c.as_dict() for node, c in wait.nodes.items()} == {  # the nodes over the same day only
        "mail": counts(completed=1, sent=1), "wait": counts(entered=1, completed=2, events=1),
        "done": counts(entered=2, completed=2)}

    assert_report_is_the_ledger(harness, campaign_id)
    assert (rows_in(engine, report_deltas) > 0) == postgres  # the fresh part, not folded yet
    fold(engine)
    assert rows_in(engine, report_deltas) == 0
    assert_report_is_the_ledger(harness, campaign_id)
    with reading(engine) as conn:
        keys = conn.execute(select(report_counts.c.hour, report_counts.c.node_id)
                            .where(report_counts.c.campaign_id == campaign_id)).all()
    assert len(keys) == len(set(keys))  # one row per hour and node


def test_a_step_counts_where_it_started_and_where_it_finished() -> None:
    """A step entered in one hour and finished in the next counts in both; one within an hour, once in it."""
    ten, eleven = datetime(2030, 1, 8, 10, tzinfo=UTC), datetime(2030, 1, 8, 11, tzinfo=UTC)
    claimed = [ClaimedRun(run_id, "c", 1, 1, f"t{run_id}", {}, "pending", None, None, 0, 1, False, ())
               for run_id in (1, 2)]
    late, just_after = ten + timedelta(minutes=59, seconds=59), eleven + timedelta(seconds=1)
    records = [StepRecord(1, "send", 1, "send_message", 1, late, "k1", just_after, "ok", None, {"channel": "null"}),
               StepRecord(2, "send", 1, "send_message", 1, late, "k2", late, "failed", None, {"error": "x"})]
    rows, paths = tally(claimed, records)
    by_hour = {row["hour"]: {k: v for k, v in row.items() if k not in ("campaign_id", "hour", "node_id") and v}
               for row in rows}
    assert by_hour == {ten: {"entered": 2, "runs_entered": 2, "failed": 1, "runs_failed": 1},
                       eleven: {"completed": 1, "sent": 1, "runs_completed": 1}}
    assert paths == [{"campaign_id": "c", "node_id": "send", "edge": "", "visits": 2}]


def test_a_report_asked_for_badly_says_what_is_wrong(journey: Any, clock: Any) -> None:
    harness, campaign_id = journey
    with pytest.raises(Exception, match=r"node: 'mial' is not a node of campaign 'Welcome' \(its nodes: start, mail"):
        campaign_report(harness.runtime, campaign_id, node="mial")
    with pytest.raises(Exception, match="by: 'week' is not one of day, hour"):
        campaign_report(harness.runtime, campaign_id, by="week")
    with pytest.raises(Exception, match="10001 hours asked for; at most 10000"):
        campaign_report(harness.runtime, campaign_id, by="hour", since=DAY1, until=DAY1 + timedelta(hours=10_001))
    with pytest.raises(Exception, match="no campaign 'Nope'"):
        campaign_report(harness.runtime, "Nope")
    # Before any activity: one empty day, today's; a live campaign's report runs to now.
    empty = campaign_report(harness.runtime, campaign_id)
    assert [p.start for p in empty.periods] == [hour(clock.now()).replace(hour=0)] and not any(empty.totals.values())
    harness.launch(campaign_id, harness.csv(AUDIENCE))
    clock.advance(timedelta(days=2))
    live = campaign_report(harness.runtime, campaign_id)
    assert [p.start for p in live.periods][-1] == hour(clock.now()).replace(hour=0)


def test_an_upgrade_counts_the_ledger_already_there(journey: Any, clock: Any) -> None:
    """Migration 0009 counts the step records and events written before it, once (events under no node: where
    their run was when they arrived is not recorded); work after the upgrade adds to them."""
    from alembic import command

    harness, campaign_id = journey
    engine = harness.runtime.engine
    play(harness, clock, campaign_id)
    before = campaign_report(harness.runtime, campaign_id, by="hour")
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0008")
    upgrade(engine)
    after = campaign_report(harness.runtime, campaign_id, by="hour")
    assert numbers(after) == numbers(before)
    assert {node: c.as_dict() for node, c in after.nodes.items()} == {
        "start": counts(entered=4, completed=4), "mail": counts(entered=4, completed=3, failed=1, sent=3),
        "wait": counts(entered=3, completed=3), "done": counts(entered=3, completed=3), "": counts(events=2)}
    assert_report_is_the_ledger(harness, campaign_id)
    again = harness.create(JOURNEY.replace("name: Welcome", "name: Again"))
    harness.launch(again, harness.csv("key,email\neve,eve@example.org\n"))
    harness.run_to_idle()
    assert campaign_report(harness.runtime, "Again").totals.as_dict() == counts(entered=1, sent=1)
    assert_report_is_the_ledger(harness, campaign_id)


def test_pruning_the_ledger_keeps_the_report(journey: Any, clock: Any) -> None:
    """Retention removes old step records; the report still says what happened then."""
    harness, campaign_id = journey
    play(harness, clock, campaign_id)
    before = campaign_report(harness.runtime, campaign_id)
    clock.advance(timedelta(days=40))
    assert prune_step_records(harness.runtime, older_than=timedelta(days=30)) == 14
    assert rows_in(harness.runtime.engine, step_records) == 0
    after = campaign_report(harness.runtime, campaign_id)
    assert (after.periods, after.nodes) == (before.periods, before.nodes)


# --- the CLI, the API and the console ------------------------------------------------------------------------------


def test_the_cli_prints_the_report_as_a_table_csv_or_json(journey: Any, clock: Any, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path, database_url: str) -> None:
    harness, campaign_id = journey
    play(harness, clock, campaign_id)
    (tmp_path / "cli").mkdir()
    cli = make_cli(monkeypatch, tmp_path / "cli", database_url)  # the journey's database, as its operator types

    table = cli("campaign", "report", "Welcome").stdout
    assert "Welcome, runs per day (UTC)" in table and "Visits per node over the same time" in table
    assert re.search(r"2030-01-07\s+4\s+0\s+1\s+2\s+1\s*\n", table)
    assert re.search(r"total\s+4\s+3\s+1\s+3\s+2\s*\n", table)
    assert re.search(r"mail\s+4\s+3\s+1\s+3\s+0\s*\n", table)

    csv = cli("campaign", "report", campaign_id[:8], "--by", "hour", "--since", "2030-01-08T00:30:00+01:00",
              "--until", "2030-01-08T02:00Z", "--format", "csv").stdout
    assert csv.splitlines() == ["period,entered,completed,failed,sent,events",
                                "2030-01-07T23:00:00+00:00,4,0,1,2,1",  # 00:30+01:00 is 23:30 UTC: its hour
                                "2030-01-08T00:00:00+00:00,0,1,0,1,0",
                                "2030-01-08T01:00:00+00:00,0,0,0,0,1"]

    data = as_json(cli("campaign", "report", "Welcome", "--node", "wait", "--format", "json"))
    assert (data["by"], data["node"], data["counts"], data["timezone"]) == ("day", "wait", "visits", "UTC")
    assert [(p["start"], p["entered"], p["completed"], p["events"]) for p in data["periods"]] == [
        ("2030-01-07T00:00:00+00:00", 2, 0, 1), ("2030-01-08T00:00:00+00:00", 1, 2, 1),
        ("2030-01-09T00:00:00+00:00", 0, 1, 0)]
    assert data["totals"] == counts(entered=3, completed=3, events=2)

    wrong = cli("campaign", "report", "Welcome", "--node", "nope", code=1)
    assert wrong.stderr.strip().startswith("error: node: 'nope' is not a node of campaign 'Welcome'")
    assert "Invalid value for '--by'" in cli("campaign", "report", "Welcome", "--by", "week", code=2).stderr
    assert "error: no campaign 'Nope'" in cli("campaign", "report", "Nope", code=1).stderr


def test_the_api_gives_the_report_to_any_account(journey: Any, clock: Any) -> None:
    harness, campaign_id = journey
    play(harness, clock, campaign_id)
    with serving(create_app(harness.runtime)) as url:
        read = {"Authorization": f"Bearer {harness.api_token('auditor', 'read')}"}
        answer = httpx.get(f"{url}/api/campaigns/{campaign_id}/report", headers=read)
        assert answer.status_code == 200
        body = answer.json()
        assert body == campaign_report(harness.runtime, campaign_id).as_json()
        assert [p["start"][:10] for p in body["periods"]] == ["2030-01-07", "2030-01-08", "2030-01-09"]
        assert [n["node"] for n in body["nodes"]] == ["start", "mail", "wait", "done"]  # the workflow's order
        hourly = httpx.get(f"{url}/api/campaigns/{campaign_id}/report", headers=read,
                           params={"by": "hour", "node": "mail", "since": "2030-01-08T00:00:00Z"}).json()
        assert [(p["start"], p["sent"]) for p in hourly["periods"] if p["sent"]] == [("2030-01-08T00:00:00+00:00", 1)]
        assert httpx.get(f"{url}/api/campaigns/{campaign_id}/report", headers=read,
                         params={"node": "nope"}).status_code == 400
        assert httpx.get(f"{url}/api/campaigns/{campaign_id}/report", headers=read,
                         params={"by": "week"}).status_code == 422
        assert httpx.get(f"{url}/api/campaigns/nope/report", headers=read).status_code == 404
        assert httpx.get(f"{url}/api/campaigns/{campaign_id}/report").status_code == 401


def test_the_campaign_page_draws_the_activity_with_its_numbers(journey: Any, clock: Any, page: Any) -> None:
    harness, campaign_id = journey
    play(harness, clock, campaign_id)
    Accounts(harness.runtime).add("iris", Role.AUDITOR, harness.actor, password=PASSWORD)
    with serving(create_app(harness.runtime)) as url:
        page.goto(f"{url}/sign-in")
        page.fill("#name", "iris")
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        page.wait_for_url(f"{url}/campaigns")
        page.goto(f"{url}/campaigns/{campaign_id}")
        assert page.inner_text("#report-heading") == "Activity"
        assert [page.inner_text(f"#total-{m}") for m in METRICS] == ["4", "3", "1", "3", "2"]
        chart = page.locator("#report-chart")
        box = chart.bounding_box()
        assert box is not None and box["width"] > 600 and box["height"] > 120  # drawn, and wide
        titles = page.locator("#report-chart rect > title").all_text_contents()
        assert "Mon 07 Jan 2030 · entered: 4" in titles and "Tue 08 Jan 2030 · completed: 2" in titles
        assert "Mon 07 Jan 2030 · entered 4, completed 0, failed 1, messages sent 2, events 1" in titles
        assert len(page.locator("#report-chart rect[fill='#c62828']").all()) == 1  # one failure bar: day 1
        page.click("#report-numbers summary")
        rows = page.locator("#report-numbers tbody tr").all_inner_texts()
        assert [re.sub(r"\s+", " ", r).strip() for r in rows] == [
            "Mon 2030-01-07 4 0 1 2 1", "Tue 2030-01-08 0 2 0 1 1", "Wed 2030-01-09 0 1 0 0 0"]
        nodes = [re.sub(r"\s+", " ", r).strip() for r in page.locator("#report-nodes tbody tr").all_inner_texts()]
        assert nodes == ["start 4 4 0 0 0", "mail 4 3 1 3 0", "wait 3 3 0 0 2", "done 3 3 0 0 0"]
        assert page.inner_text("#report .switch") == \
            "Per day · per hour, 07 Jan 2030 to 09 Jan 2030 (UTC; at most the last 30 days)"
        page.click("#report-hourly")
        assert page.inner_text("#report .switch") == \
            "Per day · per hour, 07 Jan 2030 23:00 to 09 Jan 2030 01:00 (UTC; at most the last 48 hours)"
        hours = page.locator("#report-chart rect > title").all_text_contents()
        assert "Wed 09 Jan 2030 00:00 UTC · completed: 1" in hours
        assert page.locator("#report-chart rect.period").count() == 26  # from the first activity's hour
