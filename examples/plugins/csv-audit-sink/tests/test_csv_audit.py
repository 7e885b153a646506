"""The csv audit sink fed by campaignkit's dispatcher from real campaigns, read back with csv.DictReader."""

from __future__ import annotations

import csv
import logging
import stat
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from campaignkit.core.testing import CampaignHarness

# A comma, quotes and a backslash: each must survive the round trip through one CSV cell. (Names cannot hold a
# newline or other control characters: definitions refuse them, and audit records escape any that come otherwise.)
TRICKY_NAME = 'Q3 review, "north" \\ team'
TRICKY_NAME_IN_TRAIL = 'Q3 review, "north" \\ team'


def flow(name: str) -> str:
    quoted = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f"""
name: "{quoted}"
folder: "audit, tests"
audience: {{source: csv, path: audience.csv, key: key}}
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: done}}
    - {{id: done, type: left_campaign}}
"""


AUDIENCE = "key\nada\nbob\n"


@pytest.fixture
def ck_settings() -> dict[str, Any]:
    return {"audit": {"sinks": ["csv"]}, "plugins": {"config": {"csv_audit": {"path": "audit/audit.csv"}}}}


def csv_audit(**config: Any) -> dict[str, Any]:
    """The ``plugins`` settings for ck_make_campaign that change these keys of ck_settings' csv_audit table."""
    return {"config": {"csv_audit": config}}


def csv_path(harness: CampaignHarness, relative: str = "audit/audit.csv") -> Path:
    return harness.runtime.settings.var_dir / relative


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def as_cells(row: Any) -> dict[str, str]:
    """An audit row as the CSV holds it: text, empty for NULL, timestamps in ISO 8601."""
    return {key: "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
            for key, value in row._mapping.items()}


def test_the_audit_trail_of_a_campaign_lands_in_the_csv(ck_campaign: CampaignHarness) -> None:
    ck_campaign.run_campaign(flow(TRICKY_NAME), AUDIENCE)
    audit = ck_campaign.audit()
    assert {"Created", "Workflow Started", "Workflow Completed"} <= {row.audit_sub_type for row in audit}

    assert ck_campaign.dispatch_audit() == {"csv": len(audit)}

    path = csv_path(ck_campaign)
    header, rows = read_rows(path)
    assert header == list(audit[0]._mapping.keys())  # every AuditHistory column (and record_hash), table order
    assert [int(row["audit_id"]) for row in rows] == [row.audit_id for row in audit]
    assert [row["audit_sub_type"] for row in rows] == [row.audit_sub_type for row in audit]
    assert rows == [as_cells(row) for row in audit]  # nothing dropped or changed, commas and quotes included
    assert rows[0]["object_name"] == TRICKY_NAME_IN_TRAIL and rows[0]["object_folder"] == "audit, tests"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_redispatch_adds_nothing_and_a_second_campaign_appends(ck_campaign: CampaignHarness) -> None:
    ck_campaign.run_campaign(flow("First"), AUDIENCE)
    ck_campaign.dispatch_audit()
    path = csv_path(ck_campaign)
    before = path.read_bytes()

    assert ck_campaign.dispatch_audit() == {"csv": 0}
    assert path.read_bytes() == before

    first_count = len(ck_campaign.audit())
    ck_campaign.run_campaign(flow("Second"), AUDIENCE)
    audit = ck_campaign.audit()
    assert ck_campaign.dispatch_audit() == {"csv": len(audit) - first_count}

    assert path.read_bytes().startswith(before)  # appended, not rewritten
    with path.open(newline="", encoding="utf-8") as handle:
        raw = list(csv.reader(handle))
    assert [row[0] for row in raw].count("audit_id") == 1  # one header
    _, rows = read_rows(path)
    assert [int(row["audit_id"]) for row in rows] == [row.audit_id for row in audit]
    assert {row["object_name"] for row in rows} >= {"First", "Second"}


def test_one_file_per_day_of_the_records(ck_make_campaign: Callable[..., CampaignHarness], ck_clock: Any) -> None:
    harness = ck_make_campaign(plugins=csv_audit(path="audit/{date}/audit.csv"))
    harness.run_campaign(flow("Monday"), AUDIENCE)
    ck_clock.advance(timedelta(days=1))
    harness.run_campaign(flow("Tuesday"), AUDIENCE)
    audit = harness.audit()

    assert harness.dispatch_audit() == {"csv": len(audit)}

    by_day: dict[str, list[int]] = {}
    for row in audit:
        by_day.setdefault(row.audit_timestamp.date().isoformat(), []).append(row.audit_id)
    assert sorted(by_day) == ["2030-01-07", "2030-01-08"]
    for day, ids in by_day.items():
        header, rows = read_rows(csv_path(harness, f"audit/{day}/audit.csv"))
        assert header[0] == "audit_id"
        assert [int(row["audit_id"]) for row in rows] == ids


def test_chosen_columns_in_the_chosen_order(ck_make_campaign: Callable[..., CampaignHarness]) -> None:
    harness = ck_make_campaign(plugins=csv_audit(columns=["audit_sub_type", "audit_id", "details"]))
    harness.run_campaign(flow("Columns"), AUDIENCE)
    harness.dispatch_audit()
    header, rows = read_rows(csv_path(harness))
    assert header == ["audit_sub_type", "audit_id", "details"]
    assert rows == [{"audit_sub_type": r.audit_sub_type, "audit_id": str(r.audit_id), "details": r.details or ""}
                    for r in harness.audit()]


def test_formula_guard_keeps_spreadsheets_from_running_cells(ck_make_campaign: Callable[..., CampaignHarness]) -> None:
    harness = ck_make_campaign(plugins=csv_audit(guard_formulas=True))
    harness.run_campaign(flow('=HYPERLINK("http://evil.example")'), AUDIENCE)
    harness.dispatch_audit()
    _, rows = read_rows(csv_path(harness))
    assert {row["object_name"] for row in rows} == {"'=HYPERLINK(\"http://evil.example\")"}
    assert rows[0]["version_major"] == "1"  # numbers are left alone


def test_a_half_written_row_is_cut_off_and_its_batch_delivered_again(ck_campaign: CampaignHarness) -> None:
    ck_campaign.run_campaign(flow("Before the crash"), AUDIENCE)
    ck_campaign.dispatch_audit()
    path = csv_path(ck_campaign)
    complete = path.read_bytes()
    # What a crash mid-write leaves: an open quoted field that would swallow every later row.
    with path.open("ab") as handle:
        handle.write(b'999999,tester,"half a row\r\nstill inside')

    ck_campaign.run_campaign(flow("After the crash"), AUDIENCE)
    audit = ck_campaign.audit()
    ck_campaign.dispatch_audit()

    assert path.read_bytes().startswith(complete)
    _, rows = read_rows(path)
    assert [int(row["audit_id"]) for row in rows] == [row.audit_id for row in audit]
    assert rows == [as_cells(row) for row in audit]


def test_records_delivered_again_are_not_written_twice(ck_campaign: CampaignHarness,
                                                        ck_make_runtime: Callable[..., Any]) -> None:
    """The dispatcher is at-least-once: a crash after emit but before its cursor moved sends a batch again."""
    ck_campaign.run_campaign(flow("Once"), AUDIENCE)
    ck_campaign.dispatch_audit()
    path = csv_path(ck_campaign)
    before = path.read_bytes()
    records = [{**row._mapping, "audit_timestamp": row.audit_timestamp.isoformat()} for row in ck_campaign.audit()]

    runtime = ck_campaign.runtime
    runtime.registry.audit_sink("csv", runtime).emit(records)  # the same sink, which remembers the file's end
    fresh = ck_make_runtime()  # a restarted process, which reads the file's end from disk
    fresh.registry.audit_sink("csv", fresh).emit(records[-2:])

    assert path.read_bytes() == before


def test_a_file_with_other_columns_is_left_alone_and_nothing_is_lost(
    ck_campaign: CampaignHarness, ck_clock: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    path = csv_path(ck_campaign)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"audit_id,details\r\n1,from an older setup\r\n")
    ck_campaign.run_campaign(flow("Mismatch"), AUDIENCE)

    with caplog.at_level(logging.WARNING):
        assert ck_campaign.dispatch_audit() == {"csv": 0}
    assert path.read_bytes() == b"audit_id,details\r\n1,from an older setup\r\n"
    assert "is not the configured columns" in caplog.text and str(path) in caplog.text

    path.rename(path.with_name("audit.old.csv"))  # what the error tells the admin to do
    ck_clock.advance(timedelta(minutes=5))  # past the dispatcher's backoff
    audit = ck_campaign.audit()
    assert ck_campaign.dispatch_audit() == {"csv": len(audit)}
    _, rows = read_rows(path)
    assert [int(row["audit_id"]) for row in rows] == [row.audit_id for row in audit]
