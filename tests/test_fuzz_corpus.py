"""The fuzz corpus through the real command, on SQLite and PostgreSQL: every hostile or malformed definition and CSV
under tests/fuzz/ is refused with one line naming the file (and line and column, or key), exit 1, no traceback, in
bounded time, and nothing is written. The examples, and values at the very edge of every bound, are accepted.

Refusals write nothing, so each database is initialised once per module and shared by its cases.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Cli, as_json, make_cli
from sqlalchemy import create_engine, func, select, text

from campaignkit.core.db.schema import audit_history, campaign_versions, campaigns, launches, runs

FUZZ = Path(__file__).resolve().parent / "fuzz"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SECONDS = 3.0  # per case: a bomb is stopped by a limit long before this, not by luck

# Each file, and what its one line must say, mostly right after "error: <path>" ({path} where it is elsewhere).
DEFINITIONS = {
    "alias_bomb_billion_laughs.yaml": ":4:7: settings.l5", "alias_bomb_long_text.yaml": "(definitions.max_total_chars)",
    "alias_bomb_seven_levels_in_settings.yaml": ":5:7: settings.anchors",
    "alias_to_itself.yaml": ":3:11: settings.self: an alias refers to a list or mapping that contains it",
    "binary_garbage.yaml": ":1:1: not valid UTF-8: byte 0x80 at byte offset 0",
    "binary_tag.yaml": ":5:53: workflow.nodes[1].config.reason: unsupported YAML tag '!!binary'",
    "cohort_weight_huge.yaml": ":5:45: workflow.nodes[1].config.cohorts (node 'b')",
    "control_character_in_key.yaml": ":3:12: settings: key 'a\\tb' contains control character U+0009",
    "deeply_nested_mappings.yaml": ":3:135: nested deeper than 32 levels (definitions.max_depth)",
    "deeply_nested_sequences.yaml": ":3:48: nested deeper than 32 levels (definitions.max_depth)",
    "duplicate_key.yaml": ":2:1: name: duplicate key 'name'",
    "edge_label_longer_than_100.yaml": "(node 'b'): Value error, edge label 'cccc",
    "empty_file.yaml": ":1:1: the file is empty",
    "escape_character_in_name.yaml": ":1:1: name: 'red \\x1b[31m' contains control character U+001B",
    "float_overflowing_to_infinity.yaml": ":5:53: workflow.nodes[1].timeout_seconds: '1.0e+400' is not a finite number",
    "integer_beyond_64_bits.yaml": ":5:58: workflow.nodes[1].retry.max_attempts: '99999999999999999999' is out of "
                                   "range",
    "integer_of_5000_digits.yaml": ":3:15: settings.n: '99999", "kind_misspelt.yaml": "did you mean 'access_review'?",
    "kind_not_text.yaml": ":2:1: kind: must be one of access_review, journey, phishing, not a list",
    "latin1_encoding.yaml": ":1:10: not valid UTF-8: byte 0xe9 at byte offset 9",
    "list_as_key.yaml": ":3:12: settings: mapping keys must be plain values",
    "merge_key.yaml": ":5:45: workflow.nodes[1].config: merge keys (<<) are not supported",
    "name_longer_than_200.yaml": ":1:1: name: String should have at most 200 characters",
    "newline_in_folder.yaml": ":2:1: folder: 'one\\ntwo' contains control character U+000A",
    "nul_byte_in_file.yaml": ":1:10: NUL byte at byte offset 9",
    "nul_escape_in_key.yaml": ":3:12: settings: a text contains NUL (U+0000)",
    "nul_escape_in_name.yaml": ":1:7: name: a text contains NUL (U+0000)",
    "null_key.yaml": ":3:12: settings: mapping keys must be plain values",
    "only_comments.yaml": ":1:1: the file is empty",
    "python_object_tag.yaml": ":3:11: settings: unsupported YAML tag '!!python/object/apply:os.system'",
    "raw_control_character.yaml": ":1:11: control character U+0007 at byte offset 10",
    "retry_backoff_factor_huge.yaml": ":5:44: workflow.nodes[1].retry.backoff_factor (node 'b'): Input should be "
                                      "less than or equal to 10",
    "retry_backoff_nan.yaml": ":5:61: workflow.nodes[1].retry.backoff_seconds: '.nan' is not a finite number",
    "retry_max_backoff_beyond_ten_years.yaml": ":5:44: workflow.nodes[1].retry.max_backoff_seconds (node 'b')",
    "review_escalate_after_zero.yaml": ":3:31: settings.escalate_after: Value error, must be at least one second",
    "review_remind_every_too_long.yaml": ":3:12: settings.remind_every: Value error, must be at most 3650 days",
    "schedule_end_after_too_long.yaml": ":2:12: schedule.end_after: Value error, must be at most 3650 days",
    "schedule_start_at_year_0.yaml": ":2:22: schedule.start_at: '0000-01-01T00:00:00' is not a valid date and time",
    "schedule_start_at_year_9999.yaml": ":2:12: schedule.start_at: Value error, must be between 1970 and 2999",
    "set_tag.yaml": ":3:11: settings: unsupported YAML tag '!!set'",
    "step_type_misspelt.yaml": ":5:15: workflow.nodes[1].type (node 'b'): unknown step type 'send_mesage'",
    "tab_indentation.yaml": ":3:1: while scanning for the next token, found character '\\t'",
    "text_longer_than_limit.yaml": ":3:14: description: a value longer than 65536 characters",
    "time_delay_99999999_days.yaml": ":5:42: workflow.nodes[1].config.duration (node 'b')",
    "time_delay_negative.yaml": "duration: Value error, must not be negative",
    "timeout_seconds_beyond_a_day.yaml": "(node 'b'): Input should be less than or equal to 86400",
    "timeout_seconds_infinite.yaml": ":5:53: workflow.nodes[1].timeout_seconds: '.inf' is not a finite number",
    "timestamp_offset_out_of_range.yaml": ":2:22: schedule.start_at: '2030-01-01 00:00:00 +99:00' is not a valid "
                                          "date and time",
    "too_many_aliases.yaml": ":5:610: more than 100 aliases (definitions.max_aliases)",
    "top_level_list.yaml": ":1:1: a campaign definition must be a mapping",
    "two_documents.yaml": ":2:1: expected a single document in the stream, but found another document",
    "undefined_alias.yaml": ":2:11: found undefined alias 'nowhere'",
    "unknown_audience_source.yaml": ":2:12: audience.source: no audience source named 'ldap' is registered",
    "unknown_tag_vault.yaml": ":5:53: workflow.nodes[1].config.reason: unsupported YAML tag '!vault'",
    "unterminated_flow_sequence.yaml": ":4:1: while parsing a flow node, expected the node content",
    "utf16_with_bom.yaml": ":1:1: the file is UTF-16 (byte order mark at byte offset 0)",
    "utf16_without_bom.yaml": ":1:2: NUL byte at byte offset 1",
    "utf32_with_bom.yaml": ":1:1: the file is UTF-32 (byte order mark at byte offset 0)",
    "version_beyond_32_bits.yaml": ":2:1: version: String should match pattern",
    "wait_for_event_timeout_20_years.yaml": "(node 'b'): timeout: Value error, must be at most 3650 days",
}
CSVS = {
    "bad_row_after_many_good_ones.csv": ":2502: expected 2 fields, found 1",
    "binary_garbage.csv": ":1: not valid utf-8-sig text: invalid start byte",
    "blank_lines_only.csv": ":1: no 'email' column in the header ()",
    "carriage_returns_only.csv": ":1: new-line character seen in unquoted field",
    "empty_column_name.csv": ":1: header has empty or repeated column names",
    "empty_file.csv": ":1: the file is empty; expected a header row",
    "empty_key.csv": ":3: empty 'email'",
    "escape_character_in_key.csv": ":2: the key 'a\\x1b[31m@example.org' contains control character U+001B",
    "header_only.csv": ": the audience is empty: no targets to launch",
    "key_of_301_characters.csv": ":2: the key is 301 characters long; at most 300",
    "latin1_encoding.csv": ":2: not valid utf-8-sig text: invalid continuation byte",
    "missing_key_column.csv": ":1: no 'email' column in the header (mail, first_name)",
    "newline_in_quoted_key.csv": ":2: the key 'a@example.org\\nb@example.org' contains control character U+000A",
    "nul_in_column_name.csv": ":2: column name 'first\\x00name' contains NUL (U+0000)",
    "nul_in_key.csv": ":2: the key 'a\\x00@example.org' contains control character U+0000",
    "nul_in_value.csv": ":2: column 'first_name' contains NUL (U+0000), which PostgreSQL cannot store",
    "repeated_column_name.csv": ":1: header has empty or repeated column names",
    "review_row_without_user_email.csv": "1 audience row(s) refused: {path}:3: empty 'user_email'",
    "text_after_closing_quote.csv": ":2: ",
    "too_few_fields.csv": ":3: expected 2 fields, found 1",
    "too_many_fields.csv": ":2: expected 2 fields, found 3",
    "unterminated_quote.csv": ":3: unexpected end of data",
    "utf16_with_bom.csv": ":1: not valid utf-8-sig text: invalid start byte",
    "whitespace_key.csv": ":3: empty 'email'",
}

JOURNEY = """\
name: {name}
audience: {{source: csv, path: {path}, key: email}}
workflow:
  nodes:
    - {{id: a, type: entered_campaign, next: b}}
    - {{id: b, type: left_campaign}}
"""
REVIEW = """\
name: {name}
kind: access_review
audience: {{source: csv, path: {path}}}
"""


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A folder (var_dir, working directory) and an initialised database, one per backend for the module."""
    folder = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'campaignkit.db'}"
        with pytest.MonkeyPatch.context() as patch:
            make_cli(patch, folder, url)("init")
        yield folder, url
        return
    admin_url = os.environ.get("CAMPAIGNKIT_TEST_PG_URL")
    if not admin_url:
        pytest.fail("CAMPAIGNKIT_TEST_PG_URL is not set")
    name = f"ck_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = f"{admin_url.rpartition('/')[0]}/{name}"
        with pytest.MonkeyPatch.context() as patch:
            make_cli(patch, folder, url)("init")
        yield folder, url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def cli(shared: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return make_cli(monkeypatch, *shared)


def counts(url: str, campaign_id: str | None = None) -> dict[str, int]:
    """Rows that a refused command must leave as they were."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                     for table in (campaigns, campaign_versions, launches, runs, audit_history)}
            if campaign_id is not None:
                found["draft"] = conn.execute(select(func.count()).select_from(campaigns).where(
                    campaigns.c.id == campaign_id, campaigns.c.state == "draft")).scalar_one()
            return found
    finally:
        engine.dispose()


def refused(cli: Cli, *args: str, path: Path, expected: str) -> None:
    """One line naming ``path`` and saying ``expected``, exit 1, no traceback (cli checks), in bounded time."""
    started = time.monotonic()
    err = cli(*args, code=1).stderr
    elapsed = time.monotonic() - started
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("error: ") and str(path) in err, err
    assert expected.replace("{path}", str(path)) in err, err
    assert elapsed < SECONDS, f"{path.name} took {elapsed:.1f}s"


def test_the_corpus_lists_every_file() -> None:
    assert sorted(p.name for p in (FUZZ / "definitions").iterdir()) == sorted(DEFINITIONS)
    assert sorted(p.name for p in (FUZZ / "csv").iterdir()) == sorted(CSVS)
    assert len(DEFINITIONS) >= 30 and len(CSVS) >= 20


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_a_hostile_definition_is_refused_in_one_line_and_nothing_is_stored(
        cli: Cli, shared: tuple[Path, str], name: str) -> None:
    before = counts(shared[1])
    path = FUZZ / "definitions" / name
    refused(cli, "campaign", "create", str(path), path=path, expected=DEFINITIONS[name])
    assert counts(shared[1]) == before


@pytest.mark.parametrize("name", sorted(CSVS))
def test_a_malformed_audience_is_refused_in_one_line_and_nothing_is_launched(
        cli: Cli, shared: tuple[Path, str], name: str) -> None:
    path = FUZZ / "csv" / name
    definition = shared[0] / f"{name}.yaml"
    template = REVIEW if name.startswith("review_") else JOURNEY
    definition.write_text(template.format(name=f"csv {name}", path=path))
    cli("campaign", "create", str(definition))
    campaign_id = as_json(cli("campaign", "show", f"csv {name}", "--format", "json"))["id"]
    before = counts(shared[1], campaign_id)
    refused(cli, "campaign", "launch", campaign_id, path=path, expected=CSVS[name])
    # No launch, no run, no File Import record: the launch transaction rolled back whole.
    assert counts(shared[1], campaign_id) == before and before["draft"] == 1
