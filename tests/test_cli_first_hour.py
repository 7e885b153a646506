"""What a new user meets in the first hour with the command: a quick start, one line per mistake, tables that fit
the terminal, and the audit and history listings complete.

In-process through CliRunner (tests/cli_support.py) unless the process itself is the point: what a command imports
is only visible in a fresh interpreter.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from cli_support import Cli, as_json, make_cli
from sqlalchemy import create_engine

from campaignkit.core.audit.queries import COLUMNS as AUDIT_COLUMNS
from campaignkit.core.db.migrate import _head_from_files, head_revision, is_up_to_date, upgrade
from campaignkit.core.testing import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# The columns of an AuditHistory record.
AUDIT_HISTORY = {"audit_id", "user_name", "computer_name", "computer_ip", "server_name", "audit_timestamp",
                 "object_id", "object_name", "object_folder", "version_major", "version_minor", "audit_type",
                 "audit_sub_type", "details", "class_name", "assembly_name"}


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    return make_cli(monkeypatch, tmp_path, f"sqlite:///{tmp_path / 'campaignkit.db'}")


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """The demo journey with a one-day wait, so no timeout races a slow run."""
    (tmp_path / "journey.yaml").write_text((EXAMPLES / "journey.yaml").read_text().replace("timeout: PT2S",
                                                                                            "timeout: P1D"))
    (tmp_path / "contacts.csv").write_text((EXAMPLES / "contacts.csv").read_text())
    return tmp_path / "journey.yaml"


@pytest.fixture
def review(tmp_path: Path) -> Path:
    for name in ("access_review.yaml", "access_review.csv"):
        (tmp_path / name).write_text((EXAMPLES / name).read_text())
    return tmp_path / "access_review.yaml"


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# --- start-up ----------------------------------------------------------------------------------------------------

HEAVY = ("fastapi", "uvicorn", "starlette", "apscheduler", "scim2_client", "scim2_models", "httpx2", "alembic")


def loaded_by(args: list[str], cwd: Path, env: dict[str, str]) -> set[str]:
    """The top-level packages a fresh interpreter has imported once the command is done."""
    code = ("import sys\nfrom campaignkit.core.cli import main\nsys.argv = ['campaignkit', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('\\n' + ' '.join(sorted({name.split('.')[0] for name in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.splitlines()[-1].split())


def test_help_and_a_listing_load_no_web_server_scheduler_or_scim(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNKIT_")}
    env["CAMPAIGNKIT_VAR_DIR"] = str(tmp_path / "var")
    # --help lists the campaign kinds' own commands, so it loads the plugins (their pydantic models, the built-in
    # steps' Jinja2), but neither a database nor a server: those load when a command uses them.
    help_loaded = loaded_by(["--help"], tmp_path, env)
    assert not help_loaded & {*HEAVY, "sqlalchemy", "itsdangerous"}
    subprocess.run([sys.executable, "-c", "from campaignkit.core.cli import main; main()", "init"], cwd=tmp_path,
                   env=env, check=True, capture_output=True)
    # A command that builds a runtime loads every plugin: their modules leave what they use for when it is used.
    assert not loaded_by(["campaign", "list"], tmp_path, env) & set(HEAVY)


def test_the_schema_check_reads_the_head_from_the_files_and_asks_alembic_when_they_differ(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'check.db'}")
    try:
        assert _head_from_files() == head_revision()
        assert not is_up_to_date(engine)  # not initialised
        upgrade(engine, "0001")
        assert not is_up_to_date(engine)  # behind
        upgrade(engine)
        assert is_up_to_date(engine)
    finally:
        engine.dispose()


def test_version(cli: Cli) -> None:
    assert cli("--version").stdout == f"campaignkit {version('campaignkit')}\n"


def test_boolean_options_are_flags_in_help(cli: Cli) -> None:
    shown = cli("campaign", "launch", "--help").stdout
    assert "<bool>" not in shown
    assert re.search(r"^\s+--unless-running\s+Do nothing", shown, re.MULTILINE), shown
    assert re.search(r"^\s+--at TIME\s+Launch later", shown, re.MULTILINE), shown


# --- one line for every mistake ----------------------------------------------------------------------------------


def test_launch_at_takes_any_iso_8601_time(cli: Cli, demo: Path, tmp_path: Path) -> None:
    cli("init")
    cli("campaign", "create", str(demo))
    out = cli("campaign", "launch", "Welcome journey", "--at", "2030-01-07T09:00:00.5+01:00").stdout
    assert out == f"campaign {as_json(cli('campaign', 'show', 'Welcome journey', '--format', 'json'))['id']} " \
                  "scheduled for 2030-01-07T08:00:00.500000+00:00 (launch 1)\n"
    later = tmp_path / "later.yaml"
    later.write_text(demo.read_text().replace("name: Welcome journey", "name: Later"))
    cli("campaign", "create", str(later))
    assert "scheduled for 2030-01-07T09:00:00+00:00" in cli("campaign", "launch", "Later", "--at",
                                                            "2030-01-07T09:00Z").stdout
    err = one_line(cli("campaign", "launch", "Later", "--at", "next tuesday", code=2).stderr)
    assert err.startswith("error: ") and "'next tuesday' is not an ISO 8601 time" in err, err
    assert "campaignkit campaign launch --help" in err


def test_a_usage_error_is_one_line_naming_the_help(cli: Cli) -> None:
    err = one_line(cli("campaign", "launch", "x", "--bogus", code=2).stderr)
    assert err.startswith("error: No such option: --bogus") and err.endswith("(see 'campaignkit campaign launch "
                                                                              "--help')"), err
    assert "No such command" in one_line(cli("frobnicate", code=2).stderr)
    assert "Usage:" in cli("campaign", code=2).stderr  # a group without a command shows its help


def test_what_a_launch_and_work_print_starts_on_the_first_line(cli: Cli, demo: Path) -> None:
    cli("init")
    cli("campaign", "create", str(demo))
    assert cli("campaign", "launch", "Welcome journey").stdout.startswith("launched campaign ")
    assert cli("work", "--until-idle").stdout.startswith("idle: ")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        yield int(listening.getsockname()[1])


@pytest.mark.parametrize("role", ["serve", "web"])
def test_a_port_in_use_is_one_line_and_starts_nothing(cli: Cli, taken_port: int, role: str) -> None:
    cli("init")
    by_option = cli(role, "--port", str(taken_port), code=1)
    by_setting = cli(role, code=1, env={"CAMPAIGNKIT_WEB__PORT": str(taken_port)})
    for result in (by_option, by_setting):
        assert one_line(result.stderr) == (f"error: port {taken_port} on 127.0.0.1 is already in use (another "
                                           "campaignkit serve or web?); choose another with --port, or set web.port")
        assert "serving on" not in result.stdout


def test_serve_listens_on_host_and_port_and_links_follow_the_port(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("init")
    served: dict[str, Any] = {}

    def run_all(runtime: Any, sock: socket.socket) -> None:
        served.update(address=sock.getsockname(), web=runtime.settings.web)
        sock.close()

    monkeypatch.setattr("campaignkit.core.serve.run_all", run_all)
    port = free_port()
    assert cli("serve", "--host", "127.0.0.1", "--port", str(port)).stdout == (
        f"serving on http://127.0.0.1:{port} (Ctrl-C stops)\n")
    assert served["address"] == ("127.0.0.1", port)
    assert served["web"].base_url == f"http://127.0.0.1:{port}"  # the default base_url follows the port
    cli("serve", "--port", str(port), env={"CAMPAIGNKIT_WEB__BASE_URL": "https://reviews.example.org"})
    assert served["web"].base_url == "https://reviews.example.org"  # a configured one is the proxy's: kept


# --- output that fits --------------------------------------------------------------------------------------------


def test_tables_show_short_ids_that_commands_accept_and_fit_the_terminal(cli: Cli, demo: Path, tmp_path: Path) -> None:
    cli("init")
    second = tmp_path / "second.yaml"
    second.write_text(demo.read_text().replace("name: Welcome journey", "name: A second journey with a long name"))
    cli("campaign", "create", str(demo))
    cli("campaign", "create", str(second))
    ids = {c["name"]: c["id"] for c in as_json(cli("campaign", "list", "--format", "json"))}
    for width in (80, 60):
        table = cli("campaign", "list", env={"COLUMNS": str(width)}).stdout
        assert max(map(len, table.splitlines())) <= width, table
        for name, campaign_id in ids.items():
            assert campaign_id not in table
            row = re.search(rf"^{campaign_id[:8]} +(\S+)", table, re.MULTILINE)  # never wrapped, first in its row
            assert row is not None and name.startswith(row.group(1)), table
    short = ids["Welcome journey"][:8]
    assert as_json(cli("campaign", "show", short, "--format", "json"))["id"] == ids["Welcome journey"]
    assert "6 run(s)" in cli("campaign", "launch", short).stdout
    runs = cli("runs", short, env={"COLUMNS": "80"}).stdout
    assert max(map(len, runs.splitlines())) <= 80 and "ada@example.org" in runs


def test_long_audit_details_are_cut_in_a_narrow_table_and_kept_elsewhere(cli: Cli, demo: Path) -> None:
    cli("init")
    cli("campaign", "create", str(demo))
    campaign_id = as_json(cli("campaign", "list", "--format", "json"))[0]["id"]
    cli("campaign", "launch", campaign_id)  # its File Import record names the audience file with its full path
    records = as_json(cli("audit", "--format", "json"))
    longest = max((r["details"] or "" for r in records), key=len)
    assert len(longest) > 100
    narrow = cli("audit", env={"COLUMNS": "100"}).stdout
    assert max(map(len, narrow.splitlines())) <= 100 and "…" in narrow and longest not in narrow
    piped = cli("audit", env={"COLUMNS": None}).stdout  # no terminal and no COLUMNS: nothing to fit
    assert longest in piped and "…" not in piped


def test_audit_json_and_csv_carry_every_column(cli: Cli, demo: Path) -> None:
    cli("init")
    cli("campaign", "create", str(demo))
    records = as_json(cli("audit", "--format", "json"))
    assert [r["audit_sub_type"] for r in records] == ["Created", "User Created"]  # newest first; init's first admin
    assert all(set(record) == set(AUDIT_COLUMNS) >= AUDIT_HISTORY for record in records)
    assert cli("audit", "--format", "csv").stdout.splitlines()[0].split(",") == list(AUDIT_COLUMNS)
    header = re.split(r"\s{2,}", cli("audit").stdout.splitlines()[1].strip())
    assert header[:3] == ["audit id", "audit timestamp", "user name"]  # the table keeps its selection


def test_audit_object_takes_a_short_id(cli: Cli, demo: Path) -> None:
    cli("init")
    cli("campaign", "create", str(demo))
    campaign_id = as_json(cli("campaign", "list", "--format", "json"))[0]["id"]
    found = as_json(cli("audit", "--object", campaign_id[:8], "--format", "json"))
    assert found and {r["object_id"] for r in found} == {campaign_id}


def test_history_of_a_review_that_has_not_begun_says_when_it_starts(cli: Cli, review: Path) -> None:
    cli("init")
    cli("campaign", "create", str(review))
    draft = cli("history", "Quarterly access review").stdout
    assert one_line(draft).startswith("campaign 'Quarterly access review' has not been launched: its history "
                                      "starts when the campaign begins")
    cli("campaign", "launch", "Quarterly access review", "--at", "2030-01-07T09:00:00+01:00")
    scheduled = cli("history", "Quarterly access review").stdout
    assert one_line(scheduled) == ("campaign 'Quarterly access review' is scheduled for 2030-01-07T08:00:00+00:00: "
                                   "its history starts when the campaign begins")
    assert as_json(cli("history", "Quarterly access review", "--format", "json"))["rows"] == []
