"""sql_inventory against a real SQLite inventory file: end to end, unmapped fields, locks, missing files, secrets."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import ROWS, inventory_config, make_inventory, read_inventory, table_changes

from campaignkit.core import ConfigurationError, FieldUpdate
from campaignkit.core.testing import free_port

AUDIENCE = "key,manager\nalice,Grace\nbob,Linus\n"


def review(field: str = "Campaigns Approval", value: str = "Approved by {{ target.manager }}",
           retry: str = "{max_attempts: 3, backoff_seconds: 10}") -> str:
    return f"""
name: Access review
workflow:
  nodes:
    - {{id: start, type: entered_campaign, next: record}}
    - id: record
      type: update_custom_field
      config: {{updater: sql_inventory, field: "{field}", value: "{value}"}}
      retry: {retry}
      next: done
    - {{id: done, type: left_campaign}}
"""


def step(ck_campaign: Any, run: Any, node: str = "record") -> Any:
    return [s for s in ck_campaign.steps(run.id) if s.node_id == node]


def test_update_custom_field_writes_the_rendered_value_into_the_inventory(ck_campaign: Any, inventory: Path) -> None:
    runs = ck_campaign.run_campaign(review(), AUDIENCE)

    assert [run.status for run in runs] == ["completed", "completed"]
    assert read_inventory(inventory) == {
        "alice": ("Approved by Grace", "it", "laptop"),
        "bob": ("Approved by Linus", "it", "phone"),
        "zoe": ("Revoked", "hr", "badge"),  # a target not in the campaign is untouched
    }
    (record,) = step(ck_campaign, runs[0])
    assert record.outcome == "ok" and record.detail == {"field": "Campaigns Approval", "value": "Approved by Grace",
                                                        "updater": "sql_inventory"}


def test_unmapped_field_fails_the_step_permanently(ck_campaign: Any, inventory: Path) -> None:
    # The updater never sees a node's config before it runs (campaignkit has no hook for it), so creation passes
    # and the first attempt fails, without retrying: no retry can map the field.
    runs = ck_campaign.run_campaign(review(field='Owner\\"; DROP TABLE \\"asset inventory\\"; --'), AUDIENCE)

    for run in runs:
        (record,) = step(ck_campaign, run)
        assert record.outcome == "failed" and record.attempt == 1
        assert record.detail["error"] == (
            "sql_inventory: field 'Owner\"; DROP TABLE \"asset inventory\"; --' is not mapped to a column "
            "(mapped: 'Campaigns Approval', 'Owner'); add it to plugins.config.sql_inventory.fields")
        assert run.status == "failed" and run.error.startswith("record: sql_inventory: field ")
    assert read_inventory(inventory) == {row[0]: row[1:] for row in ROWS}


def test_target_missing_from_inventory_fails_or_is_inserted(ck_campaign: Any, ck_make_campaign: Any,
                                                            inventory: Path) -> None:
    (run,) = ck_campaign.run_campaign(review(), "key,manager\ncarol,Ada\n")
    (record,) = step(ck_campaign, run)
    assert record.outcome == "failed" and record.attempt == 1
    assert "no row of sqlite:///" in record.detail["error"]
    assert "table 'asset inventory' has user = 'carol' (create_missing is off)" in record.detail["error"]
    assert "carol" not in read_inventory(inventory)

    creating = ck_make_campaign(plugins=table_changes(create_missing=True))
    (run,) = creating.run_campaign(review().replace("Access review", "Second review"), "key,manager\ncarol,Ada\n")
    assert run.status == "completed"
    assert read_inventory(inventory)["carol"] == ("Approved by Ada", None, None)


def test_repeating_an_update_is_idempotent(ck_make_campaign: Any, inventory: Path) -> None:
    harness = ck_make_campaign(plugins=table_changes(create_missing=True))
    updater = harness.runtime.registry.field_updater("sql_inventory", harness.runtime)
    for target_key in ("alice", "dave"):  # an existing row, and one the first call inserts
        update = FieldUpdate(target_key=target_key, field="Owner", value="sec", idempotency_key=f"ck:1:{target_key}:1",
                             run_id=1, campaign_id="c", at=datetime(2030, 1, 7, tzinfo=UTC))
        updater.update(update)
        first = read_inventory(inventory)
        updater.update(update)  # a retry, or a worker redelivering the step
        assert read_inventory(inventory) == first
    assert read_inventory(inventory)["alice"] == (None, "sec", "laptop")
    assert read_inventory(inventory)["dave"] == (None, "sec", None)
    assert len(read_inventory(inventory)) == len(ROWS) + 1


def test_locked_inventory_is_a_temporary_error_that_a_retry_gets_past(ck_campaign: Any, ck_clock: Any,
                                                                       inventory: Path) -> None:
    holder = sqlite3.connect(inventory, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another application writing to the inventory
    try:
        campaign_id = ck_campaign.create(review())
        ck_campaign.launch(campaign_id, ck_campaign.csv(AUDIENCE))
        ck_campaign.run_to_idle()
        for run in ck_campaign.runs(campaign_id):
            (record,) = step(ck_campaign, run)
            assert record.outcome == "retrying", record.detail
            assert "database is locked" in record.detail["error"]
            assert run.status == "active"
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    ck_clock.advance(timedelta(seconds=11))
    ck_campaign.run_to_idle()
    assert [run.status for run in ck_campaign.runs(campaign_id)] == ["completed", "completed"]
    assert read_inventory(inventory)["bob"][0] == "Approved by Linus"


def test_missing_inventory_file_is_temporary_and_never_created(ck_make_campaign: Any, ck_clock: Any,
                                                               tmp_path: Path) -> None:
    later = tmp_path / "mounted-later.db"
    harness = ck_make_campaign(plugins=table_changes(url=f"sqlite:///{later}"))
    (run,) = harness.run_campaign(review(), "key,manager\nalice,Grace\n")
    (record,) = step(harness, run)
    assert record.outcome == "retrying"
    assert "unable to open database file" in record.detail["error"]
    assert not later.exists()  # an empty inventory would turn every later update into "no such table"

    make_inventory(later)  # the volume is back
    ck_clock.advance(timedelta(seconds=11))
    harness.run_to_idle()
    (run,) = harness.runs(run.campaign_id)
    assert run.status == "completed"
    assert read_inventory(later)["alice"][0] == "Approved by Grace"


def test_missing_table_or_column_fails_permanently(ck_make_campaign: Any) -> None:
    harness = ck_make_campaign(plugins=table_changes(fields={"Campaigns Approval": "approval"}))
    (run,) = harness.run_campaign(review(), "key,manager\nalice,Grace\n")
    (record,) = step(harness, run)
    assert record.outcome == "failed" and record.attempt == 1
    assert record.detail["error"].endswith("table 'asset inventory' has no column(s) 'approval'")


def test_password_never_appears_in_step_records_errors_or_logs(ck_make_campaign: Any,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens: the driver reports a refused connection, naming host and port
    url = f"postgresql://inventory:S3cr3t-pw@127.0.0.1:{port}/assets"
    harness = ck_make_campaign(plugins=table_changes(url=url, timeout_seconds=2))
    with caplog.at_level(logging.DEBUG):
        (run,) = harness.run_campaign(review(retry="{max_attempts: 1}"), "key,manager\nalice,Grace\n")
    (record,) = step(harness, run)
    assert record.outcome == "failed"
    error = record.detail["error"]
    assert error.startswith(f"sql_inventory: postgresql://inventory:***@127.0.0.1:{port}/assets table "
                            "'asset inventory': OperationalError: ")
    assert "S3cr3t-pw" not in error and "S3cr3t-pw" not in run.error and "S3cr3t-pw" not in caplog.text
    assert "S3cr3t-pw" not in repr(harness.runtime.registry.field_updater("sql_inventory", harness.runtime).config)


@pytest.mark.parametrize(("change", "expected"), [
    ({"url": "not a database url with S3cr3t-pw"}, "plugins.config.sql_inventory.url: Value error, must be a "
                                                   "SQLAlchemy database URL"),
    ({"url": "nosuchdb://u:S3cr3t-pw@h/db"}, "no SQLAlchemy dialect for 'nosuchdb'"),
    ({"fields": {"Owner": "user"}}, "the key column 'user' cannot be written as a field"),
    ({"fields": {"Owner": ""}}, "plugins.config.sql_inventory.fields: Value error, field names and column names "
                                "must not be empty: 'Owner'"),
    ({"tabel": "x"}, "plugins.config.sql_inventory.tabel"),
])
def test_bad_configuration_names_the_key_and_hides_the_url(ck_make_runtime: Any, inventory: Path,
                                                           change: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ck_make_runtime(plugins={"config": {"sql_inventory": {**inventory_config(inventory), **change}}})
    assert expected in str(caught.value)
    assert "S3cr3t-pw" not in str(caught.value)

