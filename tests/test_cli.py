"""The campaignkit command: outputs, formats, exit codes, and one clear line instead of a traceback.

Most tests run the Typer app in-process with CliRunner (error translation lives in the app, so the exit codes and
messages are those of the real command); a few run the installed console script as a process, where the process
itself is the point: the entry point, exit status without a traceback, and `serve` stopping on SIGTERM.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import Cli, as_json
from typer.testing import CliRunner

from campaignkit.core.cli.app import register
from campaignkit.core.testing import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"




@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """The bundled demo journey, with a one-day wait so no timeout races a slow test run."""
    text = (EXAMPLES / "journey.yaml").read_text()
    assert "timeout: PT2S" in text
    (tmp_path / "journey.yaml").write_text(text.replace("timeout: PT2S", "timeout: P1D"))
    (tmp_path / "contacts.csv").write_text((EXAMPLES / "contacts.csv").read_text())
    return tmp_path / "journey.yaml"


def console_script(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def command(*args: str) -> list[str]:
    """The installed `campaignkit` script next to this interpreter; the same entry point otherwise."""
    script = Path(sys.executable).with_name("campaignkit")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from campaignkit.core.cli import main; main()", *args]


# --- set-up ---------------------------------------------------------------------------------------------------------


def test_init_creates_private_secrets_and_migrates(sqlite_cli: Cli, tmp_path: Path) -> None:
    out = sqlite_cli("init").stdout
    assert "database ready at revision" in out
    secrets_dir = tmp_path / "var" / "secrets"
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    written = {}
    for name in ("secret_key", "audit_key"):
        path = secrets_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        written[name] = path.read_text()
        assert len(written[name]) >= 32 and written[name] not in out
    assert not (secrets_dir / "api_token").exists()  # personal tokens replace the shared one
    # The first admin, with a password shown once and kept only as an argon2 hash.
    lines = out.splitlines()
    shown = lines[lines.index(next(line for line in lines if "created the first admin, 'admin'" in line)) + 1]
    assert len(shown) >= 16 and " " not in shown
    assert not any(shown.encode() in path.read_bytes() for path in (tmp_path / "var").rglob("*") if path.is_file())
    again = sqlite_cli("init").stdout  # idempotent: the secrets and the admin stay, nothing is printed about them
    assert {name: (secrets_dir / name).read_text() for name in written} == written
    assert "created" not in again
    assert [(u["name"], u["role"]) for u in as_json(sqlite_cli("user", "list", "--format", "json"))] == [
        ("admin", "admin")]
    assert as_json(sqlite_cli("campaign", "list", "--format", "json")) == []


def test_commands_refuse_an_uninitialised_database(sqlite_cli: Cli) -> None:
    for args in (("campaign", "list"), ("runs", "x"), ("run", "show", "1"), ("work", "--until-idle"),
                 ("event", "send", "1", "opened"), ("campaign", "launch", "x")):
        err = sqlite_cli(*args, code=1).stderr
        assert err.strip() == "error: the database is not initialised or is out of date: run `campaignkit init`", args
    # What needs no database works before init.
    assert json.loads(sqlite_cli("schema").stdout)["title"] == "CampaignDefinition"
    sqlite_cli("plugins")
    sqlite_cli("db", "upgrade")
    sqlite_cli("campaign", "list")


def test_schema_prints_the_definition_json_schema(sqlite_cli: Cli) -> None:
    schema = as_json(sqlite_cli("schema"))
    assert schema["title"] == "CampaignDefinition" and "workflow" in schema["required"]


# --- the demo, end to end -------------------------------------------------------------------------------------------


def test_the_demo_end_to_end(cli: Cli, demo: Path) -> None:
    cli("init")
    assert "created campaign" in cli("campaign", "create", str(demo)).stdout
    assert "updated campaign" in cli("campaign", "create", str(demo), "--update-existing").stdout
    [campaign] = as_json(cli("campaign", "list", "--format", "json"))
    assert (campaign["name"], campaign["state"], campaign["runs"]) == ("Welcome journey", "draft", 0)

    assert "6 run(s)" in cli("campaign", "launch", campaign["id"][:8]).stdout  # a unique id prefix
    assert "already in_progress" in cli("campaign", "launch", "Welcome journey", "--unless-running").stdout
    assert "in_progress" in cli("campaign", "launch", "Welcome journey", code=1).stderr
    assert "6 run(s) finished" not in cli("work", "--until-idle").stdout

    rows = as_json(cli("runs", "Welcome journey", "--format", "json"))
    assert len(rows) == 6 and {r["status"] for r in rows} == {"waiting"}
    assert {r["current_node"] for r in rows} == {"opened"}
    table = list(csv.DictReader(io.StringIO(cli("runs", "Welcome journey", "--format", "csv", "--search", "ADA")
                                            .stdout)))
    assert [(r["target_key"], r["status"]) for r in table] == [("ada@example.org", "waiting")]
    listed = cli("runs", "Welcome journey", "--sort", "-target", "--limit", "2").stdout
    assert "margaret@example.org" in listed and "linus@example.org" in listed and "ada@example.org" not in listed

    run_id = next(r["id"] for r in rows if r["target_key"] == "ada@example.org")
    assert f"recorded for run {run_id}" in cli("event", "send", str(run_id), "opened", "--payload", '{"ip": "10.0.0.1"}'
                                               ).stdout
    assert "1 run(s) finished" in cli("work", "--until-idle").stdout

    timeline = as_json(cli("run", "show", str(run_id), "--format", "json"))
    last_event = timeline["run"]["context"]["last_event"]
    assert timeline["run"]["status"] == "completed" and last_event["payload"]["ip"] == "10.0.0.1"
    assert [(p["node"], p["edge"]) for p in timeline["path"]] == [
        ("entered", "next"), ("business_hours", "next"), ("welcome", "next"), ("opened", "opened"),
        ("tag_engaged", "next"), ("left", None)]
    # One record per node visit: the wait's record ends as ok with the edge its event chose.
    assert [(s["node_id"], s["step_type"], s["visit"], s["outcome"]) for s in timeline["steps"]][2:4] == [
        ("welcome", "send_message", 1, "ok"), ("opened", "wait_for_event", 1, "ok")]
    shown = cli("run", "show", str(run_id)).stdout
    assert "completed" in shown and "ada@example.org" in shown
    assert "path: entered -next-> business_hours -next-> welcome -next-> opened -opened-> tag_engaged -next-> left" \
        in shown

    # Editing a campaign with runs makes a new version; its runs keep the one they started on.
    assert "now at version 1.1" in cli("campaign", "update", "Welcome journey", str(demo)).stdout
    shown = as_json(cli("campaign", "show", "Welcome journey", "--format", "json"))
    assert shown["runs_by_status"] == {"completed": 1, "waiting": 5} and shown["version"] == "1.1"
    assert "5 unfinished run(s) ended" in cli("campaign", "terminate", "Welcome journey").stdout
    statuses = [r["status"] for r in as_json(cli("runs", "Welcome journey", "--format", "json", "--sort", "status"))]
    assert statuses == ["completed"] + ["terminated"] * 5
    assert as_json(cli("runs", "Welcome journey", "--status", "waiting", "--format", "json")) == []
    audit = as_json(cli("audit", "--format", "json"))
    assert {"Created", "Edited", "Workflow Started", "Workflow Termination Request"} <= {
        a["audit_sub_type"] for a in audit}


def test_listings_in_all_three_formats(sqlite_cli: Cli, demo: Path) -> None:
    sqlite_cli("init")
    sqlite_cli("campaign", "create", str(demo))
    sqlite_cli("campaign", "launch", "Welcome journey")
    sqlite_cli("work", "--until-idle")
    as_json_rows = as_json(sqlite_cli("runs", "Welcome journey", "--format", "json"))
    csv_rows = list(csv.DictReader(io.StringIO(sqlite_cli("runs", "Welcome journey", "--format", "csv").stdout)))
    table = sqlite_cli("runs", "Welcome journey", "--format", "table").stdout
    assert [r["target_key"] for r in csv_rows] == [r["target_key"] for r in as_json_rows]
    assert [int(r["id"]) for r in csv_rows] == [r["id"] for r in as_json_rows]
    # The wait's timeout is its due time: a day ahead, written as ISO 8601 in CSV.
    due = datetime.fromisoformat(csv_rows[0]["due_at"])
    assert csv_rows[0]["status"] == "waiting" and timedelta(hours=23) < due - datetime.now(UTC) <= timedelta(days=1)
    for row in as_json_rows:
        assert row["target_key"] in table
    assert "target key" in table and "current node" in table
    campaigns_csv = list(csv.DictReader(io.StringIO(sqlite_cli("campaign", "list", "--format", "csv").stdout)))
    assert [(c["name"], c["state"], c["runs"], c["live_runs"]) for c in campaigns_csv] == [
        ("Welcome journey", "in_progress", "6", "6")]


# --- errors: one clear line, the right exit code --------------------------------------------------------------------


def test_definition_errors_are_listed_with_positions(sqlite_cli: Cli, tmp_path: Path) -> None:
    sqlite_cli("init")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad\nworkflow:\n  nodes:\n    - {id: a, type: entered_campaign, next: b}\n"
                   "    - {id: b, type: teleport}\n    - {id: a, type: left_campaign}\n")
    err = sqlite_cli("campaign", "create", str(bad), code=1).stderr
    lines = err.splitlines()
    assert len(lines) == 2, lines  # every problem, one per line, each with file:line:col
    assert any(line.startswith(f"error: {bad}:5:15: workflow.nodes[1].type (node 'b'): unknown step type 'teleport'")
               for line in lines), lines
    assert any(line.startswith(f"error: {bad}:6:8: workflow.nodes[2].id (node 'a'): duplicate node id 'a'")
               for line in lines), lines
    assert as_json(sqlite_cli("campaign", "list", "--format", "json")) == []


def test_a_bad_audience_row_names_its_line_and_launches_nothing(cli: Cli, demo: Path, tmp_path: Path) -> None:
    cli("init")
    cli("campaign", "create", str(demo))
    bad = tmp_path / "bad.csv"
    bad.write_text("email,first_name,company,plan\na@example.org,A,C,pro\nb@example.org,B,C\n")
    err = cli("campaign", "launch", "Welcome journey", "--audience", str(bad), code=1).stderr
    assert err.strip() == f"error: {bad}:3: expected 4 fields, found 3"
    assert as_json(cli("runs", "Welcome journey", "--format", "json")) == []
    assert as_json(cli("campaign", "list", "--format", "json"))[0]["state"] == "draft"
    # The same campaign launches once the file is right.
    bad.write_text("email,first_name,company,plan\na@example.org,A,C,pro\nb@example.org,B,C,basic\n")
    assert "2 run(s)" in cli("campaign", "launch", "Welcome journey", "--audience", str(bad)).stdout


def test_invalid_configuration_exits_2_naming_the_key(tmp_path: Path) -> None:
    """The real process: exit status 2, the key and the problem on stderr, and no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNKIT_")}
    env.update({"CAMPAIGNKIT_WORKER__BATCH_SIZE": "abc", "CAMPAIGNKIT_VAR_DIR": str(tmp_path / "var")})
    result = console_script("campaign", "list", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert "worker.batch_size" in result.stderr and "integer" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_config_option_reads_a_toml_file(sqlite_cli: Cli, tmp_path: Path) -> None:
    good = tmp_path / "blocked.toml"
    good.write_text('[plugins]\nblocked = ["email"]\n')
    names = {p["name"] for p in as_json(sqlite_cli("--config", str(good), "plugins", "--format", "json"))["plugins"]}
    assert "email" not in names and "enforcement" in names
    bad = tmp_path / "bad.toml"
    bad.write_text("[worker]\nlease_seconds = -1\n")
    err = sqlite_cli("--config", str(bad), "plugins", code=2).stderr
    assert "worker.lease_seconds" in err and "greater than 0" in err
    assert "no such file" in sqlite_cli("--config", str(tmp_path / "missing.toml"), "plugins", code=2).stderr


def test_unknown_references_are_one_line(sqlite_cli: Cli) -> None:
    sqlite_cli("init")
    assert sqlite_cli("campaign", "show", "nope", code=1).stderr.strip() == "error: no campaign 'nope'"
    assert sqlite_cli("run", "show", "424242", code=1).stderr.strip() == "error: no run 424242"
    assert sqlite_cli("event", "send", "424242", "opened", code=1).stderr.strip() == "error: no run 424242"
    err = sqlite_cli("event", "send", "1", "opened", "--payload", "{nope", code=1).stderr
    assert err.startswith("error: --payload: not valid JSON")


def test_an_unexpected_error_is_one_line_and_exit_70(sqlite_cli: Cli, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a SQLite database, not even close" * 100)
    env = {"CAMPAIGNKIT_DATABASE_URL": f"sqlite:///{garbage}"}
    err = sqlite_cli("campaign", "list", code=70, env=env).stderr
    assert err.startswith("internal error: ") and "--debug" in err and len(err.strip().splitlines()) == 1
    debug = CliRunner().invoke(register(), ["--debug", "campaign", "list"], env=env)
    assert debug.exit_code == 1 and "not a database" in str(debug.exception)  # --debug lets the exception through


# --- launches and work ----------------------------------------------------------------------------------------------


def test_a_launch_at_a_time_is_scheduled_and_work_launches_it_when_due(sqlite_cli: Cli, demo: Path) -> None:
    sqlite_cli("init")
    sqlite_cli("campaign", "create", str(demo))
    at = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    out = sqlite_cli("campaign", "launch", "Welcome journey", "--at", at.isoformat()).stdout
    assert f"scheduled for {at.isoformat()}" in out
    assert "already scheduled" in sqlite_cli("campaign", "launch", "Welcome journey", "--unless-running").stdout
    sqlite_cli("work", "--until-idle")
    assert as_json(sqlite_cli("runs", "Welcome journey", "--format", "json")) == []  # not due yet
    time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.2)
    sqlite_cli("work", "--until-idle")
    rows = as_json(sqlite_cli("runs", "Welcome journey", "--format", "json"))
    assert len(rows) == 6 and {r["current_node"] for r in rows} == {"opened"}


def test_terminate_ends_unfinished_runs(sqlite_cli: Cli, demo: Path) -> None:
    sqlite_cli("init")
    sqlite_cli("campaign", "create", str(demo))
    sqlite_cli("campaign", "launch", "Welcome journey")
    assert "6 unfinished run(s) ended" in sqlite_cli("campaign", "terminate", "Welcome journey").stdout
    assert {r["status"] for r in as_json(sqlite_cli("runs", "Welcome journey", "--format", "json"))} == {"terminated"}
    assert "0 step(s) executed" in sqlite_cli("work", "--until-idle").stdout
    assert as_json(sqlite_cli("campaign", "list", "--format", "json"))[0]["state"] == "terminated"


# --- plugins --------------------------------------------------------------------------------------------------------


def test_plugins_lists_bundled_and_default_plugins(sqlite_cli: Cli) -> None:
    listing = as_json(sqlite_cli("plugins", "--format", "json"))
    by_name = {p["name"]: p for p in listing["plugins"]}
    own = version("campaignkit")
    assert {
        "email",
        "enforcement",
        "custom_field",
        "audit_sinks",
        "campaignkit.core.engine.steps",
        "campaignkit.core.plugins.builtins",
    } <= set(by_name)
    assert by_name["email"]["registers"]["channel"] == ["file", "smtp"]
    assert "noop" in by_name["enforcement"]["registers"]["enforcement action"]
    assert "database" in by_name["custom_field"]["registers"]["field updater"]
    assert "wait_for_event" in by_name["campaignkit.core.engine.steps"]["registers"]["step type"]
    assert {"log", "null"} <= set(by_name["campaignkit.core.plugins.builtins"]["registers"]["channel"])
    assert "register_channels" in by_name["email"]["hooks"]
    assert "register_step_types" in by_name["campaignkit.core.engine.steps"]["hooks"]
    assert {p["version"] for p in listing["plugins"]} == {own}  # bundled: the distribution's version is ours
    table = sqlite_cli("plugins").stdout
    assert "custom_field" in table and "enforcement" in table
    blocked = as_json(sqlite_cli("plugins", "--format", "json", env={"CAMPAIGNKIT_PLUGINS__BLOCKED": '["email"]'}))
    assert "email" not in {p["name"] for p in blocked["plugins"]} and blocked["blocked"] == ["email"]


def test_the_console_script_runs_help_and_plugins(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNKIT_")}
    help_text = console_script("--help", cwd=tmp_path, env=env)
    assert help_text.returncode == 0 and "campaign" in help_text.stdout and "serve" in help_text.stdout
    listed = console_script("plugins", "--format", "json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "email" in {p["name"] for p in json.loads(listed.stdout)["plugins"]}
    unknown = console_script("frobnicate", cwd=tmp_path, env=env)
    assert unknown.returncode == 2 and "No such command" in unknown.stderr and "Traceback" not in unknown.stderr


def test_plugins_hooks_lists_implementations_in_call_order_and_tracing_shows_each_call(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNKIT_")}
    listed = console_script("plugins", "--hooks", "--format", "json", cwd=tmp_path,
                            env={**env, "CAMPAIGNKIT_TRACE_PLUGINS": "1"})
    assert listed.returncode == 0, listed.stderr
    hooks = {row["hook"]: row["implementations"] for row in json.loads(listed.stdout)}
    # The built-in channels are trylast: a plugin's channels come first, which is how a plugin overrides them.
    assert hooks["register_channels"] == [
        {"plugin": "email", "qualifiers": []},
        {"plugin": "campaignkit.core.plugins.builtins", "qualifiers": ["trylast"]},
    ]
    assert hooks["on_run_finished"] == []
    assert re.search(r"campaignkit\.trace: hook register_channels plugin=email \d+\.\d{3} ms ok returned 2: smtp, file",
                     listed.stderr), listed.stderr
    quiet = console_script("plugins", "--hooks", cwd=tmp_path, env=env)
    assert quiet.returncode == 0 and "campaignkit.trace" not in quiet.stderr


# --- serve: scheduler, worker and web in one process ----------------------------------------------------------------


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.TransportError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_serve_works_schedules_serves_and_stops_on_sigterm(sqlite_cli: Cli, demo: Path, tmp_path: Path) -> None:
    sqlite_cli("init")
    sqlite_cli("campaign", "create", str(demo))
    sqlite_cli("campaign", "launch", "Welcome journey")
    later = tmp_path / "later.yaml"
    later.write_text(demo.read_text().replace("name: Welcome journey", "name: Later journey"))
    sqlite_cli("campaign", "create", str(later))
    at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    sqlite_cli("campaign", "launch", "Later journey", "--at", at.isoformat())
    later_id = as_json(sqlite_cli("campaign", "show", "Later journey", "--format", "json"))["id"]
    first_id = as_json(sqlite_cli("campaign", "show", "Welcome journey", "--format", "json"))["id"]

    port = free_port()
    env = {**os.environ, "CAMPAIGNKIT_WEB__PORT": str(port), "CAMPAIGNKIT_WEB__HOST": "127.0.0.1"}
    env.pop("CAMPAIGNKIT_CONFIG")
    sqlite_cli("user", "add", "ops", "--role", "operator")
    token = sqlite_cli("token", "create", "ops", "--name", "test", "--scope", "write").stdout.splitlines()[-1]
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    process = subprocess.Popen(command("serve"), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, "the web app")

        def runs(campaign_id: str) -> list[dict[str, Any]]:
            response = httpx.get(f"{url}/api/campaigns/{campaign_id}/runs", headers=headers, timeout=5)
            return list(response.json())

        # The worker thread advances the launched campaign; the scheduler launches the other one at its time.
        wait_for(lambda: len(runs(first_id)) == 6 and {r["status"] for r in runs(first_id)} == {"waiting"},
                 "the worker")
        wait_for(lambda: len(runs(later_id)) == 6 and {r["status"] for r in runs(later_id)} == {"waiting"},
                 "the scheduled launch")
        run_id = runs(first_id)[0]["id"]
        posted = httpx.post(f"{url}/api/runs/{run_id}/events", json={"name": "opened"}, headers=headers)
        assert posted.status_code == 201
        wait_for(lambda: httpx.get(f"{url}/api/runs/{run_id}", headers=headers).json()["run"]["status"]
                 == "completed", "the event to complete the run")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            raise AssertionError(f"serve did not stop on SIGTERM: {err}") from None
    assert process.returncode == 0, err
    assert f"serving on http://127.0.0.1:{port}" in out
    assert "Traceback" not in err and token not in out + err
