"""Every CSV campaignkit writes neutralises cells a spreadsheet would run as formulas (CSV injection).

Values come from where an attacker can put them: an audience CSV's user names, a campaign's name, audit details. The
listings (runs, history, audit) and the audit export are run through the real command, as an operator would.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from cli_support import Cli, as_json, make_cli

from campaignkit.core.audit import Actor, AuditObject, AuditSubType, AuditType, record
from campaignkit.core.csv_export import FORMULA_STARTS, CsvWriter, cell
from campaignkit.core.db import writing
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import load_settings

FORMULAS = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(1)"]
NAME = '=HYPERLINK("http://x/?leak")'
REVIEW = """
name: '{name}'
kind: access_review
audience: {{source: csv, path: people.csv}}
settings:
  channel: log
"""


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Cli:
    run = make_cli(monkeypatch, tmp_path, database_url)
    run("init")
    return run


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def no_formulas(table: list[dict[str, str]]) -> None:
    assert table
    for row in table:
        for column, value in row.items():
            assert not value.startswith(FORMULA_STARTS), f"{column}: {value!r}"


def test_cells_that_start_a_formula_get_a_quote_and_numbers_stay_numbers() -> None:
    for text in [*FORMULAS, "\tx", "\rx"]:
        assert cell(text) == "'" + text
    assert [cell(v) for v in (-2, -2.5, 0, None, "ada", "a=b", "'=x")] == [-2, -2.5, 0, None, "ada", "a=b", "'=x"]
    out = io.StringIO()
    CsvWriter(out).writerow([-2, "-2", "@SUM(1)", 1.5])
    assert out.getvalue() == "-2,'-2,'@SUM(1),1.5\n"


def test_runs_history_audit_listings_and_the_audit_export_neutralise_formulas(cli: Cli, tmp_path: Path) -> None:
    people = "user,user_email,application,approver\n" + "".join(
        f'"{user.replace(chr(34), chr(34) * 2)}",u{i}@x.org,App,grace@x.org\n'
        for i, user in enumerate([*FORMULAS, "\tx"]))
    (tmp_path / "people.csv").write_text(people)
    (tmp_path / "review.yaml").write_text(REVIEW.format(name=NAME))
    cli("campaign", "create", str(tmp_path / "review.yaml"))
    campaign_id = as_json(cli("campaign", "list", "--format", "json"))[0]["id"]
    cli("campaign", "launch", campaign_id)
    cli("work", "--until-idle")
    runtime = Runtime(load_settings())
    try:
        with writing(runtime.engine) as conn:
            for i, details in enumerate(FORMULAS):
                record(conn, actor=Actor("-2"), audit_type=AuditType.OBJECT_CHANGE, sub_type=AuditSubType.EDITED,
                       at=runtime.clock.now() + timedelta(seconds=i), obj=AuditObject(campaign_id, NAME, "@x", None),
                       details=details, code=runtime)
    finally:
        runtime.close()

    runs = rows(cli("runs", campaign_id, "--format", "csv").stdout)
    no_formulas(runs)
    assert sorted(r["target_key"] for r in runs) == sorted(["x|App", *(f"'{user}|App" for user in FORMULAS)])
    assert all(r["id"].isdigit() for r in runs)  # numbers are not text: left alone

    history = rows(cli("history", campaign_id, "--format", "csv").stdout)
    no_formulas(history)
    assert sorted(r["User"] for r in history) == sorted("'" + user for user in [*FORMULAS, "\tx"])

    listed = rows(cli("audit", "--format", "csv", "--limit", "1000").stdout)
    no_formulas(listed)
    edits = [r for r in listed if r["audit_sub_type"] == "Edited"]
    assert sorted(r["details"] for r in edits) == sorted("'" + d for d in FORMULAS)
    assert {r["user_name"] for r in edits} == {"'-2"}
    assert "'" + NAME in {r["object_name"] for r in listed}

    out = tmp_path / "audit.csv"
    cli("audit", "export", "--format", "csv", "-o", str(out))
    exported = rows(out.read_text(encoding="utf-8"))
    no_formulas(exported)
    edited = [r for r in exported if r["audit_sub_type"] == "Edited"]
    assert {(r["user_name"], r["object_folder"]) for r in edited} == {("'-2", "'@x")}
    assert sorted(r["details"] for r in edited) == sorted("'" + d for d in FORMULAS)
    assert [int(r["audit_id"]) for r in exported] == sorted(int(r["audit_id"]) for r in listed)
