"""`campaignkit remote`: the CLI operating a served campaignkit through its API with personal tokens, and the table in
docs/api.md of what each caller may do that way, checked command by command."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_support import Cli, make_cli
from conftest import Harness
from servers import serving

from campaignkit.core import create_app
from campaignkit.core.accounts.tokens import Tokens
from campaignkit.core.cli import remote
from campaignkit.core.cli.remote_client import REFUSED_TOKEN
from campaignkit.core.definitions.remote import files_dir
from campaignkit.core.testing import free_port

DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"
FLOW = """\
name: {name}
audience: {{source: csv, path: people.csv}}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: wait}}
    - {{id: wait, type: wait_for_event, config: {{events: [clicked]}}, edges: {{clicked: end}}}}
    - {{id: end, type: left_campaign}}
"""
BROKEN = FLOW.format(name="Broken").replace("type: wait_for_event", "type: wait_for_evnt")  # line 6, node "wait"
REVIEW = """\
name: Quarterly review
kind: access_review
audience: {source: csv, path: review.csv}
settings:
  channel: log
  if_no_response: revoke
"""
REVIEW_AUDIENCE = "user,user_email,application,approver\nada,ada@x.org,Payroll,grace@x.org\n" \
                  "alan,alan@x.org,CRM,grace@x.org\n"
CALLERS = ("no token", "auditor", "operator, read token", "operator, write token", "admin, write token")


@pytest.fixture
def remote_env(make_runtime: Any, actor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        tuple[Cli, str, Harness]]:
    """A campaignkit served on 127.0.0.1 (audiences in its definition files folder), and the CLI of someone with no
    database of their own."""
    harness = Harness(make_runtime(var_dir=tmp_path / "server"), actor, tmp_path)
    folder = files_dir(harness.runtime.settings)
    folder.mkdir(parents=True)
    (folder / "people.csv").write_text("key\nk1\nk2\n")
    (folder / "review.csv").write_text(REVIEW_AUDIENCE)
    (tmp_path / "client").mkdir()
    cli = make_cli(monkeypatch, tmp_path / "client", f"sqlite:///{tmp_path / 'client' / 'unused.db'}")
    with serving(create_app(harness.runtime)) as url:
        yield cli, url, harness


def as_caller(url: str, token: str | None) -> dict[str, str]:
    return {"CAMPAIGNKIT_REMOTE_URL": url, **({"CAMPAIGNKIT_REMOTE_TOKEN": token} if token else {})}


def test_an_operator_runs_a_campaign_from_the_command_line(remote_env: Any, tmp_path: Path) -> None:
    cli, url, harness = remote_env
    env = as_caller(url, harness.api_token("operator", "write", user="ops@example.org"))
    (tmp_path / "broken.yaml").write_text(BROKEN)
    refused = cli("remote", "campaign", "create", str(tmp_path / "broken.yaml"), code=1, env=env)
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("error: broken.yaml:6:") and "'wait'" in line and "wait_for_evnt" in line, line
    assert harness.audit("Created") == []

    (tmp_path / "welcome.yaml").write_text(FLOW.format(name="Welcome"))
    made = cli("remote", "campaign", "create", str(tmp_path / "welcome.yaml"), env=env).stdout
    campaign_id = made.split()[2]
    assert made.startswith(f"created campaign {campaign_id} ('Welcome', version 1.0)")
    listed = cli("remote", "campaign", "list", "--format", "json", env=env).stdout
    assert f'"id": "{campaign_id}"' in listed
    assert "Welcome" in cli("remote", "campaign", "show", campaign_id, env=env).stdout
    # As the local commands: by name or a unique id prefix, and a clear line for neither.
    assert cli("remote", "campaign", "show", "Welcome", env=env).stdout == cli(
        "remote", "campaign", "show", campaign_id[:8], env=env).stdout
    assert "no campaign 'Nope' on the server" in cli("remote", "campaign", "show", "Nope", code=1, env=env).stderr

    # A journey asks nothing before its launch.
    assert "'Welcome' launched: 2 run(s)" in cli("remote", "campaign", "launch", campaign_id, env=env).stdout
    harness.run_to_idle()
    assert "'Welcome' paused: 2 run(s) parked" in cli("remote", "campaign", "pause", campaign_id, env=env).stdout
    assert "2 run(s) released" in cli("remote", "campaign", "resume", campaign_id, env=env).stdout
    runs = cli("remote", "runs", campaign_id, "--status", "waiting", "--search", "k1", "--format", "json",
               env=env).stdout
    assert '"target_key": "k1"' in runs and '"k2"' not in runs
    run_id = harness.runs(campaign_id)[0].id
    sent = cli("remote", "event", "send", str(run_id), "clicked", "--payload", '{"ip": "203.0.113.9"}', env=env)
    assert f"(clicked) recorded for run {run_id}" in sent.stdout
    harness.run_to_idle()
    assert "-clicked->" in cli("remote", "run", "show", str(run_id), env=env).stdout
    assert cli("remote", "campaign", "launch", campaign_id, code=1, env=env).stderr.count("\n") == 1  # in progress
    kept = cli("remote", "campaign", "terminate", campaign_id, code=1, env=env, input="n\n")
    assert "not terminated" in kept.stderr and harness.campaigns.get(campaign_id)["state"] == "in_progress"
    ended = cli("remote", "campaign", "terminate", campaign_id, env=env, input="y\n")
    assert "'Welcome' terminated: 1 run(s) ended" in ended.stdout

    done = [(r.audit_sub_type, r.user_name) for r in harness.audit() if r.object_id == campaign_id]
    assert {user for _, user in done} == {"ops@example.org"}
    assert [sub for sub, _ in done if sub.startswith("Workflow")] == [
        "Workflow Started", "Workflow Pause Request", "Workflow Resume Request", "Workflow Trigger Request",
        "Workflow Termination Request"]


def test_an_operator_retries_failed_runs_and_enters_a_target_from_the_command_line(remote_env: Any) -> None:
    cli, url, harness = remote_env
    env = as_caller(url, harness.api_token("operator", "write", user="ops@example.org"))
    audience = f"path: {files_dir(harness.runtime.settings) / 'people.csv'}"
    # Neither k1 nor k2 has a plan: the branch looks for k2's, and fails; a target entered with one goes on.
    check = ("    - {id: check, type: branch, config: {condition: \"target.key == 'k1' or target.plan == 'slow'\"},"
             " edges: {'true': wait, 'false': end}}")
    checked = FLOW.format(name="Welcome").replace("next: wait}", f"next: check}}\n{check}")
    campaign_id = harness.create(checked.replace("path: people.csv", audience))
    harness.launch(campaign_id)
    harness.run_to_idle()
    k1, k2 = sorted(harness.runs(campaign_id), key=lambda run: run.target_key)
    assert (k1.status, k2.status) == ("waiting", "failed")

    entered = cli("remote", "campaign", "enter", "Welcome", "--target", "k3", "--attr", "plan=slow", env=env).stdout
    assert entered.startswith(f"campaign {campaign_id}: ")
    harness.run_to_idle()
    (k3,) = [run for run in harness.runs(campaign_id) if run.target_key == "k3"]
    assert (k3.status, k3.current_node) == ("waiting", "wait")
    again = cli("remote", "campaign", "enter", campaign_id, "--target", "k3", "--format", "json", env=env).stdout
    assert '"started": false' in again and '"reason": "in_journey"' in again  # an answer: exit 0
    assert "NAME=VALUE" in cli("remote", "campaign", "enter", campaign_id, "--target", "k4", "--attr", "plan",
                               code=1, env=env).stderr

    preview = cli("remote", "campaign", "retry", campaign_id, "--node", "check", "--dry-run", env=env).stdout
    assert f"campaign {campaign_id}: 1 run(s)" in preview and "nothing changed" in preview
    assert [run.status for run in harness.runs(campaign_id) if run.target_key == "k2"] == ["failed"]
    assert "0 run(s)" in cli("remote", "campaign", "retry", campaign_id, "--run", str(k1.id), env=env).stdout
    retried = cli("remote", "campaign", "retry", "Welcome", "--run", str(k2.id), "--format", "json", env=env).stdout
    assert '"retried": 1' in retried and f'"run_id": {k2.id}' in retried
    assert [run.status for run in harness.runs(campaign_id) if run.target_key == "k2"] != ["failed"]
    done = [(r.audit_sub_type, r.user_name) for r in harness.audit() if r.object_id == campaign_id]
    assert [entry for entry in done if entry[1] == "ops@example.org"] == [  # the entry, then the retry
        ("Workflow Started", "ops@example.org"), ("Force Workflow Status", "ops@example.org")]


def test_an_auditor_reads_a_campaigns_report_as_the_server_counts_it(remote_env: Any) -> None:
    from campaignkit.core.campaigns.reporting import campaign_report

    cli, url, harness = remote_env
    env = as_caller(url, harness.api_token("auditor", "read"))
    audience = f"path: {files_dir(harness.runtime.settings) / 'people.csv'}"
    campaign_id = harness.create(FLOW.format(name="Welcome").replace("path: people.csv", audience))
    harness.launch(campaign_id)
    harness.run_to_idle()
    served = json.loads(cli("remote", "campaign", "report", "Welcome", "--by", "hour", "--format", "json",
                            env=env).stdout)
    assert served == json.loads(json.dumps(campaign_report(harness.runtime, campaign_id, by="hour").as_json()))
    assert served["totals"]["entered"] == 2
    table = cli("remote", "campaign", "report", campaign_id, env=env).stdout
    assert "Welcome, runs per day (UTC)" in table and "Visits per node over the same time" in table
    rows = list(csv.DictReader(io.StringIO(cli("remote", "campaign", "report", campaign_id, "--node", "wait",
                                               "--format", "csv", env=env).stdout)))
    assert [row["entered"] for row in rows] == ["2"]  # today's row: both runs reached the wait
    refused = cli("remote", "campaign", "report", campaign_id, "--node", "nope", code=1, env=env).stderr
    assert refused == "error: node: 'nope' is not a node of campaign 'Welcome' (its nodes: start, wait, end)\n"


def test_a_launch_the_kind_wants_confirmed_asks_first(remote_env: Any, tmp_path: Path) -> None:
    cli, url, harness = remote_env
    env = as_caller(url, harness.api_token("operator", "write"))
    (tmp_path / "review.yaml").write_text(REVIEW)
    campaign_id = cli("remote", "campaign", "create", str(tmp_path / "review.yaml"), env=env).stdout.split()[2]
    declined = cli("remote", "campaign", "launch", campaign_id, code=1, env=env, input="n\n")
    assert "2 access(es) could be removed" in declined.stdout  # the question
    assert "not launched" in declined.stderr and "--yes" in declined.stderr
    unattended = cli("remote", "campaign", "launch", campaign_id, code=1, env=env)  # no answer: no
    assert "not launched" in unattended.stderr and harness.runs(campaign_id) == []
    asked = cli("remote", "campaign", "launch", campaign_id, env=env, input="y\n")
    assert "launched: 2 run(s)" in asked.stdout and len(harness.runs(campaign_id)) == 2

    (tmp_path / "review.yaml").write_text(REVIEW.replace("Quarterly review", "Next review"))
    other = cli("remote", "campaign", "create", str(tmp_path / "review.yaml"), env=env).stdout.split()[2]
    assert "launched: 2 run(s)" in cli("remote", "campaign", "launch", other, "--yes", env=env).stdout


def test_an_auditor_reads_and_exports_the_audit_log_but_launches_nothing(remote_env: Any, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cli, url, harness = remote_env
    campaign_id = harness.create(FLOW.format(name="Audited").replace("path: people.csv",
                                                                     f"path: {tmp_path / 'people.csv'}"))
    (tmp_path / "people.csv").write_text("key\nk1\n")
    env = as_caller(url, harness.api_token("auditor", "read", user="audrey"))
    refused = cli("remote", "campaign", "launch", campaign_id, "--yes", code=1, env=env)
    assert refused.stderr.strip() == "error: audrey (auditor, read token) may not change anything"
    assert harness.runs(campaign_id) == []

    listed = cli("remote", "audit", "--type", "Object Change", "--format", "json", env=env).stdout
    assert '"audit_sub_type": "Created"' in listed and '"object_id"' in listed
    for number in range(3):
        harness.create(FLOW.format(name=f"More {number}"))
    monkeypatch.setattr(remote, "AUDIT_PAGE", 2)  # so that following the API's `next` cursor is needed
    newest = list(csv.DictReader(io.StringIO(cli("remote", "audit", "--limit", "3", "--format", "csv",
                                                 env=env).stdout)))
    expected = [str(r.audit_id) for r in reversed(harness.audit())]
    assert [row["audit_id"] for row in newest] == expected[:3]
    every = list(csv.DictReader(io.StringIO(cli("remote", "audit", "--all", "--format", "csv", env=env).stdout)))
    assert [row["audit_id"] for row in every] == expected

    target = tmp_path / "audit.jsonl"
    assert "exported the audit records" in cli("remote", "audit", "export", "--format", "jsonl", "-o", str(target),
                                               env=env).stdout
    lines = target.read_text().splitlines()
    assert lines and all(line.startswith("{") for line in lines) and '"Audited"' in target.read_text()
    assert not list(tmp_path.glob(".audit.jsonl.part"))
    exports = harness.audit("File Export")
    assert exports and exports[-1].user_name == "audrey"
    assert cli("remote", "audit", "export", env=env).stdout.startswith("audit_id,")


def test_a_refused_token_and_an_unreachable_server_give_one_line(remote_env: Any, tmp_path: Path) -> None:
    cli, url, harness = remote_env
    token = harness.api_token("operator", "write", user="leaver")
    tokens = Tokens(harness.runtime)
    (info,) = [t for t in tokens.list() if t.user_name == "leaver"]
    tokens.revoke(info.id, harness.actor)
    revoked = cli("remote", "campaign", "list", code=1, env=as_caller(url, token))
    assert revoked.stderr == f"error: {REFUSED_TOKEN}\n"
    assert token not in revoked.stdout + revoked.stderr

    nowhere = f"http://127.0.0.1:{free_port()}"
    gone = cli("remote", "campaign", "list", code=1, env=as_caller(nowhere, token))
    assert gone.stderr.count("\n") == 1 and f"cannot reach {nowhere}" in gone.stderr
    assert token not in gone.stderr
    unset = cli("remote", "campaign", "list", code=2, env={})
    assert "CAMPAIGNKIT_REMOTE_URL" in unset.stderr
    (tmp_path / "token").write_text(harness.api_token("auditor", "read") + "\n")
    by_file = cli("remote", "--token-file", str(tmp_path / "token"), "campaign", "list", env={
        "CAMPAIGNKIT_REMOTE_URL": url})
    assert "Campaigns" in by_file.stdout
    assert cli("remote", "campaign", "list", "--format", "nope", code=2, env=as_caller(url, token)).stderr


# --- the table in docs/api.md ---------------------------------------------------------------------------------


def documented_remote_matrix() -> dict[str, list[str]]:
    section = DOCS.read_text().split("### What each role may do through `campaignkit remote`")[1].split("\n#")[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|")]
    assert rows[0][1:] == list(CALLERS)
    return {row[0]: row[1:] for row in rows[2:]}


def remote_commands() -> set[str]:
    """Every command of `campaignkit remote`, by its path; a group that runs on its own (audit) is one too."""
    found: set[str] = set()

    def walk(command: Any, path: str) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None or getattr(command, "invoke_without_command", False):
            found.add(path)
        for name, sub in (subcommands or {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(remote.group), "remote")
    return found


def test_every_remote_command_answers_each_caller_as_the_table_in_the_docs_says(remote_env: Any,
                                                                                  tmp_path: Path) -> None:
    cli, url, harness = remote_env
    matrix = documented_remote_matrix()
    assert set(matrix) == remote_commands()  # every command is in the table, and the table names none that is gone
    tokens = {"no token": None, "auditor": harness.api_token("auditor", "read"),
              "operator, read token": harness.api_token("operator", "read"),
              "operator, write token": harness.api_token("operator", "write"),
              "admin, write token": harness.api_token("admin", "write")}
    assert list(tokens) == list(CALLERS)
    audience = f"path: {files_dir(harness.runtime.settings) / 'people.csv'}"
    campaign_id = harness.create(FLOW.format(name="Matrix").replace("path: people.csv", audience))
    harness.launch(campaign_id)
    harness.run_to_idle()
    run_id = str(harness.runs(campaign_id)[0].id)
    same = tmp_path / "matrix.yaml"
    same.write_text(FLOW.format(name="Matrix"))
    for index, caller in enumerate(CALLERS):
        # What the callers the table allows are asked to do succeeds: each its own campaign to create, and one to
        # launch, pause, resume and terminate.
        created = tmp_path / f"created-{index}.yaml"
        created.write_text(FLOW.format(name=f"Created {index}"))
        fresh = harness.create(FLOW.format(name=f"Fresh {index}").replace("path: people.csv", audience))
        arguments = {
            "remote campaign list": [], "remote campaign show": [campaign_id],
            "remote campaign create": [str(created)], "remote campaign update": [campaign_id, str(same)],
            "remote campaign launch": [fresh, "--yes"], "remote campaign pause": [fresh],
            "remote campaign resume": [fresh], "remote campaign terminate": [fresh, "--yes"],
            "remote campaign retry": [campaign_id, "--dry-run"],
            "remote campaign enter": [campaign_id, "--target", f"entered-{index}"],
            "remote campaign report": [campaign_id, "--by", "hour"],
            "remote runs": [campaign_id], "remote run show": [run_id],
            "remote event send": [run_id, "opened"], "remote audit": ["--limit", "5"],
            "remote audit export": ["-o", str(tmp_path / "export.csv")]}
        for command, expected in matrix.items():
            want = expected[CALLERS.index(caller)]
            result = cli(*command.split(), *arguments[command], code=0 if want == "yes" else 1,
                         env=as_caller(url, tokens[caller]))
            said = result.stderr
            got = "401" if ("the server wants one" in said or REFUSED_TOKEN in said) \
                else "403" if " may not " in said else "yes"
            assert got == want, f"{command} as {caller}: {said.strip() or 'ok'}, the docs say {want}"


def test_a_listing_is_read_to_its_end_through_the_cursor_of_each_page(remote_env: Any) -> None:
    _, url, harness = remote_env
    for n in range(5):
        harness.create(f"name: Journey {n}\nworkflow:\n  nodes:\n"
                       "    - {id: start, type: entered_campaign, next: end}\n    - {id: end, type: left_campaign}\n")
    from campaignkit.core.cli.remote_client import Remote

    rows = Remote(url, harness.api_token("auditor", "read")).every("/api/campaigns", {"limit": 2})
    assert [row["name"] for row in rows] == [f"Journey {n}" for n in range(5)]  # three pages, each row once
