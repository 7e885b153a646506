"""Bad [plugins.config.csv_audit] tables stop start-up with an error that names the key."""

from __future__ import annotations

from typing import Any

import pytest

from campaignkit.core import ConfigurationError


def test_the_sink_is_registered(ck_runtime: Any) -> None:
    assert "csv" in ck_runtime.registry.names("audit sink")


@pytest.mark.parametrize(("table", "key", "problem"), [
    ({"columns": ["audit_id"]}, "plugins.config.csv_audit.path", "Field required"),
    ({"path": "audit-{day}.csv"}, "plugins.config.csv_audit.path", "unknown placeholder {day}"),
    ({"path": "audit-{date:%Y}.csv"}, "plugins.config.csv_audit.path", "unknown placeholder {date:%Y}"),
    ({"path": "audit-{date.csv"}, "plugins.config.csv_audit.path", "literal braces"),
    ({"path": "a.csv", "columns": ["audit_id", "secret"]}, "plugins.config.csv_audit.columns",
     "unknown column(s) secret"),
    ({"path": "a.csv", "columns": ["details"]}, "plugins.config.csv_audit.columns", "must include audit_id"),
    ({"path": "a.csv", "columns": ["audit_id", "details", "details"]}, "plugins.config.csv_audit.columns",
     "listed twice: details"),
    ({"path": "a.csv", "columns": []}, "plugins.config.csv_audit.columns", "at least 1 item"),
    ({"path": "a.csv", "delimiter": ";"}, "plugins.config.csv_audit.delimiter", "Extra inputs"),
])
def test_bad_configuration_names_the_key(ck_make_runtime: Any, table: dict[str, Any], key: str,
                                         problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ck_make_runtime(plugins={"config": {"csv_audit": table}})
    assert key in str(caught.value) and problem in str(caught.value)


def test_enabling_the_sink_without_its_table_names_the_missing_key(ck_make_runtime: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"plugins\.config\.csv_audit\.path"):
        ck_make_runtime(audit={"sinks": ["csv"]})


def test_its_table_does_not_disturb_the_csv_audience_source(ck_make_campaign: Any) -> None:
    """plugins.config.csv configures the bundled csv audience source; the sink keeps out of it."""
    harness = ck_make_campaign(audit={"sinks": ["csv"]}, plugins={"config": {
        "csv_audit": {"path": "audit.csv"}, "csv": {"delimiter": ";"}}})
    runs = harness.run_campaign("""
name: Semicolons
audience: {source: csv, path: audience.csv, key: key}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: done}
    - {id: done, type: left_campaign}
""", "key;name\nada;Ada\n")
    assert [run.target_key for run in runs] == ["ada"]
    assert harness.dispatch_audit() == {"csv": len(harness.audit())}
