"""The campaignkit command: outputs, formats, exit codes, and one clear line instead of a traceback."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Any:
    """Run `campaignkit ARGS` in a subprocess, in a folder of its own, against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNKIT_")}
    env.update({"CAMPAIGNKIT_DATABASE_URL": database_url, "NO_COLOR": "1", "COLUMNS": "200"})

    def run(*args: str, code: int = 0, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-c", "from campaignkit.core.cli import main; main()", *args],
                                cwd=tmp_path, env={**env, **(extra_env or {})}, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == code, f"exit {result.returncode}: {result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        return result

    return run


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    for name in ("journey.yaml", "contacts.csv"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path / "journey.yaml"


def test_init_creates_private_secrets_and_migrates(cli: Any, tmp_path: Path) -> None:
    out = cli("init").stdout
    assert "database ready at revision 0001" in out
    for name in ("secret_key", "api_token"):
        path = tmp_path / "var" / "secrets" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text()) >= 32
        assert path.read_text() not in out
    cli("init")  # again: nothing changes, nothing breaks


def test_commands_refuse_an_uninitialised_database(cli: Any) -> None:
    assert "run `campaignkit init`" in cli("campaign", "list", code=1).stderr


def test_the_demo_end_to_end(cli: Any, demo: Path) -> None:
    cli("init")
    assert "created campaign" in cli("campaign", "create", str(demo)).stdout
    assert "updated campaign" in cli("campaign", "create", str(demo), "--update-existing").stdout
    assert "6 run(s)" in cli("campaign", "launch", "Welcome journey").stdout
    assert "already in_progress" in cli("campaign", "launch", "Welcome journey", "--unless-running").stdout
    cli("work", "--until-idle")
    rows = json.loads(cli("runs", "Welcome journey", "--format", "json").stdout)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"waiting"}
    assert {r["current_node"] for r in rows} == {"opened"}
    table = list(csv.DictReader(io.StringIO(cli("runs", "Welcome journey", "--format", "csv", "--search", "ada")
                                            .stdout)))
    assert [r["target_key"] for r in table] == ["ada@example.org"]
    run_id = rows[0]["id"]
    cli("event", "send", str(run_id), "opened", "--payload", '{"ip": "127.0.0.1"}')
    cli("work", "--until-idle")
    timeline = json.loads(cli("run", "show", str(run_id), "--format", "json").stdout)
    assert timeline["run"]["status"] == "completed"
    assert [p["node"] for p in timeline["path"]][:4] == ["entered", "business_hours", "welcome", "opened"]
    assert timeline["path"][3]["edge"] == "opened"
    shown = cli("run", "show", str(run_id)).stdout
    assert "path: entered -next-> business_hours -next-> welcome -next-> opened -opened-> tag_engaged" in shown
    assert "terminated campaign" in cli("campaign", "terminate", "Welcome journey").stdout
    assert {r["status"] for r in json.loads(cli("runs", "Welcome journey", "--format", "json").stdout)} \
        == {"completed", "terminated"}
    audit = json.loads(cli("audit", "--format", "json").stdout)
    assert {"Created", "Edited", "Workflow Started", "Termination Request"} <= {a["audit_sub_type"] for a in audit}
    assert "audit chain intact" in cli("audit", "verify").stdout


def test_definition_errors_are_listed_with_positions(cli: Any, tmp_path: Path) -> None:
    cli("init")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad\nworkflow:\n  nodes:\n    - {id: a, type: entered_campaign, next: b}\n"
                   "    - {id: b, type: teleport}\n")
    err = cli("campaign", "create", str(bad), code=1).stderr
    assert f"{bad}:5:15: workflow.nodes[1].type (node 'b'): unknown step type 'teleport'" in err.replace("\n", "")


def test_a_bad_audience_row_names_its_line_and_launches_nothing(cli: Any, demo: Path, tmp_path: Path) -> None:
    cli("init")
    cli("campaign", "create", str(demo))
    bad = tmp_path / "bad.csv"
    bad.write_text("email,first_name,company,plan\na@example.org,A,C,pro\nb@example.org,B,C\n")
    err = cli("campaign", "launch", "Welcome journey", "--audience", str(bad), code=1).stderr
    assert "bad.csv:3: expected 4 fields, found 3" in err.replace("\n", "")
    assert json.loads(cli("runs", "Welcome journey", "--format", "json").stdout) == []
    assert json.loads(cli("campaign", "list", "--format", "json").stdout)[0]["state"] == "draft"


def test_invalid_configuration_exits_2_naming_the_key(cli: Any) -> None:
    err = cli("plugins", code=2, extra_env={"CAMPAIGNKIT_WORKER__BATCH_SIZE": "lots"}).stderr
    assert "worker.batch_size" in err and "integer" in err


def test_plugins_lists_bundled_and_default_plugins(cli: Any) -> None:
    listing = json.loads(cli("plugins", "--format", "json").stdout)
    by_name = {p["name"]: p for p in listing["plugins"]}
    assert by_name["email"]["registers"]["channel"] == ["file", "smtp"]
    assert by_name["audit_sinks"]["registers"]["audit sink"] == ["database", "jsonl", "stdout", "syslog", "webhook"]
    assert "wait_for_event" in by_name["campaignkit.core.steps"]["registers"]["step type"]
    assert "register_channels" in by_name["email"]["hooks"]
    blocked = json.loads(cli("plugins", "--format", "json",
                             extra_env={"CAMPAIGNKIT_PLUGINS__BLOCKED": '["email"]'}).stdout)
    assert "email" not in {p["name"] for p in blocked["plugins"]}


def test_schema_prints_the_definition_json_schema(cli: Any) -> None:
    schema = json.loads(cli("schema").stdout)
    assert schema["title"] == "CampaignDefinition" and "workflow" in schema["required"]


def test_unknown_campaign_is_one_line(cli: Any) -> None:
    cli("init")
    err = cli("campaign", "show", "nope", code=1).stderr
    assert err.strip() == "error: no campaign 'nope'"
