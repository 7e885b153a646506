"""Operator commands: schedule list, campaign pause/resume, audit sinks/verify/export, and cycle filters.

Like test_cli.py, the Typer app runs in-process with CliRunner against a fresh database, once on SQLite and once on
PostgreSQL; tampering with the audit trail is done with plain SQL, as an intruder would.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_support import Cli, as_json, make_cli
from sqlalchemy import create_engine, text
from typer.testing import Result


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Cli:
    """The CLI against a fresh, initialised database."""
    run = make_cli(monkeypatch, tmp_path, database_url)
    run("init")
    return run


def as_csv(result: Result) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(result.stdout)))


def write_flow(tmp_path: Path, name: str, audience: str = "key\na\nb\nc\n") -> Path:
    """A campaign whose runs wait for a `go` event; its audience file sits next to it."""
    (tmp_path / f"{name}.csv").write_text(audience)
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""
name: {name}
audience: {{source: csv, path: {name}.csv, key: key}}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: wait}}
    - {{id: wait, type: wait_for_event, config: {{events: [go]}}, next: done}}
    - {{id: done, type: left_campaign}}
""")
    return path


def runs_of(cli: Cli, campaign: str, *extra: str) -> list[dict[str, Any]]:
    return list(as_json(cli("runs", campaign, "--format", "json", *extra)))


def state_of(cli: Cli, campaign: str) -> str:
    return str(as_json(cli("campaign", "show", campaign, "--format", "json"))["state"])


# --- schedule list ---------------------------------------------------------------------------------------------------


def test_schedule_list_shows_each_scheduled_cycle_with_its_next_fire_time(cli: Cli, tmp_path: Path) -> None:
    cli("campaign", "create", str(write_flow(tmp_path, "Later")))
    cli("campaign", "create", str(write_flow(tmp_path, "Now")))
    cli("campaign", "launch", "Now")  # launched at once: nothing left to schedule
    at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    out = cli("campaign", "launch", "Later", "--at", at.isoformat()).stdout
    later_id = as_json(cli("campaign", "show", "Later", "--format", "json"))["id"]

    (row,) = as_json(cli("schedule", "list", "--format", "json"))
    assert (row["campaign_id"], row["name"], row["status"]) == (later_id, "Later", "scheduled")
    assert datetime.fromisoformat(row["next_fire_time"]) == at
    assert f"(launch {row['launch_id']})" in out
    (csv_row,) = as_csv(cli("schedule", "list", "--format", "csv"))
    assert csv_row == {"launch_id": str(row["launch_id"]), "campaign_id": later_id, "name": "Later",
                       "next_fire_time": at.isoformat(), "status": "scheduled"}
    table = cli("schedule", "list").stdout
    assert "Later" in table and at.date().isoformat() in table and "Now" not in table

    # Pausing the campaign pauses its cycle; resuming schedules it again; terminating cancels it.
    cli("campaign", "pause", "Later")
    assert [r["status"] for r in as_json(cli("schedule", "list", "--format", "json"))] == ["paused"]
    cli("campaign", "resume", "Later")
    assert [(r["launch_id"], r["status"]) for r in as_json(cli("schedule", "list", "--format", "json"))] == [
        (row["launch_id"], "scheduled")]
    cli("campaign", "terminate", "Later")
    assert as_json(cli("schedule", "list", "--format", "json")) == []


# --- campaign pause / resume -----------------------------------------------------------------------------------------


def test_paused_runs_stop_advancing_and_continue_after_resume(cli: Cli, tmp_path: Path) -> None:
    cli("campaign", "create", str(write_flow(tmp_path, "Pausable")))
    cli("campaign", "launch", "Pausable")
    assert "paused campaign" in (out := cli("campaign", "pause", "Pausable").stdout) and "3 run(s) parked" in out
    assert state_of(cli, "Pausable") == "paused"
    assert "0 step(s) executed" in cli("work", "--until-idle").stdout
    assert {(r["status"], r["current_node"]) for r in runs_of(cli, "Pausable")} == {("pending", None)}
    assert "already paused" in cli("campaign", "launch", "Pausable", "--unless-running").stdout
    assert "cannot be paused" in cli("campaign", "pause", "Pausable", code=1).stderr

    assert "3 run(s) released" in cli("campaign", "resume", "Pausable").stdout
    assert state_of(cli, "Pausable") == "in_progress"
    cli("work", "--until-idle")
    rows = runs_of(cli, "Pausable")
    assert {(r["status"], r["current_node"]) for r in rows} == {("waiting", "wait")}

    # An event that arrives while paused is kept, and acted on only after resume.
    cli("campaign", "pause", "Pausable")
    cli("event", "send", str(rows[0]["id"]), "go")
    assert "0 step(s) executed" in cli("work", "--until-idle").stdout
    assert {r["status"] for r in runs_of(cli, "Pausable")} == {"waiting"}
    assert "3 run(s) released" in cli("campaign", "resume", "Pausable").stdout
    assert "1 run(s) finished" in cli("work", "--until-idle").stdout
    by_id = {r["id"]: r["status"] for r in runs_of(cli, "Pausable")}
    assert by_id == {rows[0]["id"]: "completed", rows[1]["id"]: "waiting", rows[2]["id"]: "waiting"}
    assert "cannot be resumed" in cli("campaign", "resume", "Pausable", code=1).stderr
    subtypes = [a["audit_sub_type"] for a in as_json(cli("audit", "--object", "Pausable", "--format", "json"))]
    assert subtypes.count("Workflow Pause Request") == 2 and subtypes.count("Workflow Resume Request") == 2


# --- audit sinks, verify, export -------------------------------------------------------------------------------------


def dispatch_audit() -> dict[str, int]:
    """What the scheduler's audit-dispatch job does, with the same environment the CLI reads."""
    from campaignkit.core.audit.dispatch import AuditDispatcher
    from campaignkit.core.runtime import Runtime
    from campaignkit.core.settings import load_settings

    runtime = Runtime(load_settings())
    try:
        return AuditDispatcher(runtime).dispatch()
    finally:
        runtime.close()


def test_audit_sinks_show_each_sink_with_its_lag_and_last_error(cli: Cli, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    trail = tmp_path / "trail" / "audit.jsonl"
    monkeypatch.setenv("CAMPAIGNKIT_AUDIT__SINKS", '["jsonl"]')
    monkeypatch.setenv("CAMPAIGNKIT_PLUGINS__CONFIG__JSONL__PATH", str(trail))
    cli("campaign", "create", str(write_flow(tmp_path, "Audited")))
    cli("campaign", "launch", "Audited")
    head = len(as_json(cli("audit", "--format", "json")))
    assert head >= 2

    database, jsonl = as_json(cli("audit", "sinks", "--format", "json"))
    assert (database["sink"], database["last_audit_id"], database["lag"]) == ("database", head, 0)
    assert (jsonl["sink"], jsonl["last_audit_id"], jsonl["lag"], jsonl["failures"]) == ("jsonl", 0, head, 0)
    assert jsonl["last_success_at"] is None

    assert dispatch_audit() == {"jsonl": head}
    assert len(trail.read_text().splitlines()) == head
    cli("campaign", "pause", "Audited")  # one more record, not yet delivered
    database, jsonl = as_json(cli("audit", "sinks", "--format", "json"))
    assert (database["last_audit_id"], jsonl["last_audit_id"], jsonl["lag"]) == (head + 1, head, 1)
    assert jsonl["last_success_at"] is not None and jsonl["last_error"] is None

    # The sink breaks (its file's place is taken by a folder): the lag stays and the error is shown.
    trail.unlink()
    trail.mkdir()
    assert dispatch_audit() == {"jsonl": 0}
    (row,) = [r for r in as_csv(cli("audit", "sinks", "--format", "csv")) if r["sink"] == "jsonl"]
    assert (row["lag"], row["failures"]) == ("1", "1") and "audit.jsonl" in row["last_error"]
    assert row["next_attempt_at"]
    table = cli("audit", "sinks").stdout
    assert "database" in table and "jsonl" in table


def test_audit_verify_names_the_first_altered_record(cli: Cli, tmp_path: Path, database_url: str) -> None:
    cli("campaign", "create", str(write_flow(tmp_path, "Chained")))
    cli("campaign", "launch", "Chained")
    cli("campaign", "pause", "Chained")
    records = sorted(as_json(cli("audit", "--format", "json")), key=lambda a: a["audit_id"])
    assert len(records) >= 3
    assert cli("audit", "verify").stdout.strip() == f"audit chain intact: {len(records)} record(s)"

    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_history SET details = 'nothing happened' WHERE audit_id = 2"))
    finally:
        engine.dispose()
    err = cli("audit", "verify", code=1).stderr.strip()
    assert err == "error: audit chain broken at record 2: record 2 was altered (1 record(s) before it are intact)"


def test_audit_export_writes_jsonl_and_csv_files_and_is_audited(cli: Cli, tmp_path: Path) -> None:
    cli("campaign", "create", str(write_flow(tmp_path, "Exported")))
    cli("campaign", "launch", "Exported")
    listed = sorted(as_json(cli("audit", "--format", "json")), key=lambda a: a["audit_id"])

    out = tmp_path / "audit.jsonl"
    assert cli("audit", "export", "--format", "jsonl", "-o", str(out)).stdout.strip() == (
        f"exported {len(listed)} record(s) to {out}")
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["audit_id"] for r in exported] == [r["audit_id"] for r in listed]
    for mine, shown in zip(exported, listed, strict=True):
        assert {k: mine[k] for k in ("audit_sub_type", "object_name", "user_name", "details")} == {
            k: shown[k] for k in ("audit_sub_type", "object_name", "user_name", "details")}
        assert datetime.fromisoformat(mine["audit_timestamp"]) == datetime.fromisoformat(shown["audit_timestamp"])

    (first_export,) = as_json(cli("audit", "--sub-type", "File Export", "--format", "json"))
    assert first_export["audit_type"] == "Client Job"
    assert first_export["details"] == f"audit export of {len(listed)} record(s) to {out}"

    # CSV, filtered: the header is the AuditHistory columns; the rows are the matching records only.
    out_csv = tmp_path / "started.csv"
    cli("audit", "export", "--format", "csv", "--sub-type", "Workflow Started", "-o", str(out_csv))
    (started,) = list(csv.DictReader(out_csv.open(newline="")))
    assert {"audit_id", "user_name", "computer_name", "audit_timestamp", "object_id", "object_name", "audit_type",
            "audit_sub_type", "details", "version_major", "version_minor"} <= set(started)
    assert (started["audit_sub_type"], started["object_name"]) == ("Workflow Started", "Exported")
    exports = as_json(cli("audit", "--sub-type", "File Export", "--format", "json"))
    assert sorted(e["details"] for e in exports) == sorted([first_export["details"],
                                                            f"audit export of 1 record(s) to {out_csv}, "
                                                            "matching sub-type 'Workflow Started'"])
    assert "audit chain intact" in cli("audit", "verify").stdout  # export records join the chain
    assert "csv or jsonl" in cli("audit", "export", "--format", "xml", code=1).stderr


# --- runs / history --cycle ------------------------------------------------------------------------------------------


def test_runs_filter_a_relaunched_campaign_by_cycle(cli: Cli, tmp_path: Path) -> None:
    cli("campaign", "create", str(write_flow(tmp_path, "Twice", audience="key\na\nb\n")))
    cli("campaign", "launch", "Twice")
    cli("work", "--until-idle")
    for row in runs_of(cli, "Twice"):
        cli("event", "send", str(row["id"]), "go")
    cli("work", "--until-idle")
    assert state_of(cli, "Twice") == "completed"
    second = tmp_path / "second.csv"
    second.write_text("key\na\nc\nd\n")  # `a` again: a new run in the new cycle
    cli("campaign", "launch", "Twice", "--audience", str(second))

    cycles = as_json(cli("campaign", "show", "Twice", "--format", "json"))["cycles"]
    assert [(c["status"], c["target_count"]) for c in cycles] == [("launched", 2), ("launched", 3)]
    first_id, second_id = (c["id"] for c in cycles)
    shown = cli("campaign", "show", "Twice").stdout
    assert "Cycles" in shown and str(second_id) in shown

    first = runs_of(cli, "Twice", "--cycle", str(first_id))
    assert [(r["target_key"], r["status"], r["launch_id"]) for r in first] == [
        ("a", "completed", first_id), ("b", "completed", first_id)]
    later = as_csv(cli("runs", "Twice", "--cycle", str(second_id), "--format", "csv"))
    assert [(r["target_key"], r["status"], r["launch_id"]) for r in later] == [
        ("a", "pending", str(second_id)), ("c", "pending", str(second_id)), ("d", "pending", str(second_id))]
    assert len(runs_of(cli, "Twice")) == 5
    assert runs_of(cli, "Twice", "--cycle", str(second_id), "--status", "completed") == []
    assert runs_of(cli, "Twice", "--cycle", str(second_id + 1000)) == []


REVIEW = """
name: Cycled review
kind: access_review
audience: {{source: csv, path: {path}}}
settings:
  channel: log
"""


def decide_as_approvers(choices: dict[str, str]) -> None:
    """Each user's item decided as its approver would, through the link sent to them and its page's form."""
    from campaignkit.core.db.schema import runs
    from campaignkit.core.runtime import Runtime
    from campaignkit.core.settings import load_settings
    from campaignkit.plugins.access_review.decisions import ReviewService
    from campaignkit.plugins.access_review.links import decision_link

    runtime = Runtime(load_settings())
    try:
        service = ReviewService(runtime)
        with runtime.engine.connect() as conn:
            items = conn.execute(runs.select().where(runs.c.status == "waiting")).all()
        for item in items:
            link = decision_link(runtime, item.id, item.assignee, item.assignment, runtime.clock.now() + timedelta(1))
            token = link.rsplit("/", 1)[1]
            service.decide(token, choices[item.target_key.split("|")[0]], service.open(token).nonce)
    finally:
        runtime.close()


def test_history_filters_an_access_review_by_cycle(cli: Cli, tmp_path: Path) -> None:
    header = "user,user_email,application,approver\n"
    (tmp_path / "q1.csv").write_text(header + "ada,ada@x.org,Payroll,grace@x.org\nalan,alan@x.org,CRM,grace@x.org\n")
    (tmp_path / "q2.csv").write_text(header + "ada,ada@x.org,Payroll,grace@x.org\nlinus,linus@x.org,Git,ada@x.org\n")
    review = tmp_path / "review.yaml"
    review.write_text(REVIEW.format(path="q1.csv"))
    cli("campaign", "create", str(review))
    cli("campaign", "launch", "Cycled review")
    cli("work", "--until-idle")
    decide_as_approvers({"ada": "approve", "alan": "revoke"})  # decisions come only from the links' pages
    cli("work", "--until-idle")
    assert state_of(cli, "Cycled review") == "completed"
    cli("campaign", "launch", "Cycled review", "--audience", str(tmp_path / "q2.csv"))
    cli("work", "--until-idle")
    first_id, second_id = (c["id"] for c in as_json(cli("campaign", "show", "Cycled review", "--format",
                                                        "json"))["cycles"])

    def history(*extra: str) -> Any:
        return as_json(cli("history", "Cycled review", "--format", "json", *extra))

    q1 = history("--cycle", str(first_id))
    assert [(r["User"], r["Application"], r["Response Status"]) for r in q1["rows"]] == [
        ("ada", "Payroll", "Approved"), ("alan", "CRM", "Revoked")]
    assert (q1["summary"]["Approved"], q1["summary"]["Revoked"], q1["summary"]["Pending Response"]) == (1, 1, 0)
    q2 = history("--cycle", str(second_id))
    assert [(r["User"], r["Approver"], r["Response Status"]) for r in q2["rows"]] == [
        ("ada", "grace@x.org", "Pending Response"), ("linus", "ada@x.org", "Pending Response")]
    assert (q2["summary"]["Approved"], q2["summary"]["Pending Response"]) == (0, 2)
    assert sum(history()["summary"].values()) == 4
    table = cli("history", "Cycled review", "--cycle", str(second_id)).stdout
    assert "linus" in table and "alan" not in table
    rows = as_csv(cli("history", "Cycled review", "--cycle", str(first_id), "--status", "Revoked", "--format", "csv"))
    assert [(r["User"], r["Result"]) for r in rows] == [("alan", "Success")]
    # The filters and sorts are the ones the kind's Run History declares; anything else is named with the choices.
    refused = cli("history", "Cycled review", "--status", "Rejected", code=1).stderr
    assert "--status: one of Pending Response, Message Delivery Failed, Approved, Revoked, Terminated" in refused
    assert "--sort: one of user, application" in cli("history", "Cycled review", "--sort", "colour", code=1).stderr
    assert [r["User"] for r in history("--sort", "-user")["rows"]] == ["linus", "alan", "ada", "ada"]
