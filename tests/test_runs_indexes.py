"""Which index of runs serves which query (migration 0011 keeps these and no others), shown by the query plans of the
statements the product itself runs, captured as they execute, on SQLite and PostgreSQL.

Each index costs every insert and every step write that changes its columns, so each must serve a query someone
waits on: the worker's claim, a campaign's runs by status, history pages by response or approver in key order or by
response time, a key's earlier runs, the search by the start of a key, the digests' runs to notify and an
approver's items. Every one of them searches an index here, never reads all of runs.

SQLite's plans are read without statistics, as the product runs (it never ANALYZEs), and then follow the indexes
whatever the table's size. PostgreSQL's follow statistics, and a test-sized table is rightly read whole: there the
test asks, with sequential scans off, what the planner can use (as tests/test_repair.py does for the due time).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, event, insert, text

from campaignkit.core.campaigns import entries, stuck
from campaignkit.core.campaigns.queries import RunQuery, contact, list_runs
from campaignkit.core.campaigns.stuck import held_runs, overdue_runs
from campaignkit.core.db import reading
from campaignkit.core.db.migrate import alembic_config, upgrade
from campaignkit.core.db.schema import campaign_versions, campaigns, launches, runs
from campaignkit.core.engine.worker import Worker
from campaignkit.core.runtime import Runtime
from campaignkit.plugins.access_review.digests import DigestSender
from campaignkit.plugins.access_review.history import HistoryQuery, history_page, history_summary

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
REVIEW, JOURNEY = "c-review", "c-journey"
RUNS = 1200  # per campaign: SQLite's plans do not depend on it, PostgreSQL's are asked with scans off
APPROVERS = 40


def _run(campaign_id: str, launch_id: int, version_id: int, i: int) -> dict[str, Any]:
    review = campaign_id == REVIEW
    user, application = f"user{i // 3:05d}@example.org", f"app{i % 3}"
    decided = review and i % 4 == 0
    waiting = not decided and i % 5 != 0
    row = {"campaign_id": campaign_id, "launch_id": launch_id, "version_id": version_id,
           "target_key": f"{user}|{application}" if review else f"{'AbCd'[i % 4]}{user}",
           "target": {"user": user, "application": application}, "status": "waiting" if waiting else "completed",
           "current_node": "decide" if waiting else "end", "context": {}, "lease_token": 0, "attempt": 0,
           "assignment": 1, "created_at": NOW, "updated_at": NOW,
           "due_at": NOW + timedelta(hours=1 + i % 50) if waiting and i % 3 else None,
           "assignee": None, "response": None, "response_at": None, "result": None, "notify": None}
    if review:
        row["assignee"] = f"approver{i % APPROVERS}@example.org"
        row["notify"] = "request" if waiting and i % 17 == 0 else None
        if decided:
            row.update(response="Revoked" if i % 3 == 0 else "Approved", response_at=NOW - timedelta(minutes=i))
    return row


@pytest.fixture
def populated(runtime: Runtime) -> Runtime:
    """Two campaigns of RUNS runs each, an access review with digests (approvers, answers, runs to notify) and a
    journey, two cycles each; some runs due, some waiting with no due time, some finished."""
    with runtime.engine.begin() as conn:
        for campaign_id, kind in ((REVIEW, "access_review"), (JOURNEY, "journey")):
            conn.execute(insert(campaigns).values(id=campaign_id, name=campaign_id, folder="", kind=kind,
                                                  state="active", created_at=NOW, updated_at=NOW))
            version = conn.execute(insert(campaign_versions).values(
                campaign_id=campaign_id, major=1, minor=0, created_at=NOW,
                definition={"kind": kind, "settings": {"digest": True}} if kind == "access_review" else {"kind": kind},
            ).returning(campaign_versions.c.id)).scalar_one()
            conn.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(current_version_id=version))
            cycles = [conn.execute(insert(launches).values(
                campaign_id=campaign_id, cycle_at=NOW - timedelta(days=30 * (2 - c)), version_id=version,
                status="launched", target_count=RUNS // 2, created_at=NOW).returning(launches.c.id)).scalar_one()
                for c in range(2)]
            conn.execute(insert(runs), [_run(campaign_id, cycles[i % 2], version, i) for i in range(RUNS)])
    return runtime


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements on runs executed meanwhile, with their parameters."""
    found: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if not many and re.search(r"\b(FROM|UPDATE|JOIN) runs\b", statement):
            found.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def plans(runtime: Runtime, call: Callable[[], Any]) -> list[str]:
    """The plan of each statement on runs that ``call`` executes, one line each."""
    engine = runtime.engine
    postgres = engine.dialect.name == "postgresql"
    with captured(engine) as statements:
        call()
    assert statements, "no statement on runs ran"
    found = []
    with engine.begin() as conn:
        if postgres:
            conn.execute(text("ANALYZE runs"))
            conn.execute(text("SET LOCAL enable_seqscan = off"))
        for statement, parameters in statements:
            rows = conn.exec_driver_sql(f"{'EXPLAIN' if postgres else 'EXPLAIN QUERY PLAN'} {statement}", parameters)
            found.append(" | ".join(str(row[-1]).strip() for row in rows))
    return found


def assert_reads(runtime: Runtime, call: Callable[[], Any], *indexes: str) -> None:
    """Every statement on runs that ``call`` executes searches an index and none reads all of runs; each of
    ``indexes`` serves one of them (any of several names separated by " or ": the planner's choice)."""
    found = plans(runtime, call)
    for plan in found:
        assert "SCAN runs" not in plan and "Seq Scan on runs" not in plan, plan
    for index in indexes:
        assert any(re.search(rf"\b({'|'.join(index.split(' or '))})\b", plan) for plan in found), (index, found)


def dialect(runtime: Runtime, sqlite: str, postgresql: str) -> str:
    return postgresql if runtime.engine.dialect.name == "postgresql" else sqlite


# --- the engine and repair -----------------------------------------------------------------------------------------


def test_the_worker_claims_due_runs_through_the_due_time_index(populated: Runtime) -> None:
    assert_reads(populated, lambda: Worker(populated, worker_id="db:1:cafe")._claim(NOW + timedelta(hours=2)),
                 "ix_runs_due_at")


def test_repair_reads_held_and_overdue_runs_through_the_due_time_index(populated: Runtime) -> None:
    def scan() -> None:
        with reading(populated.engine) as conn:
            conn.execute(held_runs(NOW + timedelta(hours=3))).all()
            conn.execute(overdue_runs(NOW + timedelta(hours=3))).all()

    assert_reads(populated, scan, "ix_runs_due_at")


# --- a campaign's runs: the executions page, the API, `campaignkit runs` --------------------------------------------


@pytest.mark.parametrize(("query", "index"), [
    (RunQuery(JOURNEY), "ix_runs_campaign_id_id or pk_runs"),  # PostgreSQL may walk the primary key instead
    (RunQuery(JOURNEY, sort="created", descending=True), "ix_runs_campaign_id_id or pk_runs"),
    (RunQuery(JOURNEY, status="completed"), "ix_runs_campaign_id_status or pk_runs"),  # (PostgreSQL only)
    (RunQuery(JOURNEY, sort="target"), "ix_runs_campaign_id_target_key"),
])
def test_a_campaigns_runs_page_reads_an_index(populated: Runtime, query: RunQuery, index: str) -> None:
    assert_reads(populated, lambda: list_runs(populated, query), index)


def test_the_search_by_key_start_reads_the_case_folded_index(populated: Runtime) -> None:
    assert_reads(populated, lambda: list_runs(populated, RunQuery(JOURNEY, search="abc", sort="created")),
                 dialect(populated, "ix_runs_campaign_id_target_key_nocase", "ix_runs_campaign_id_lower_target_key"))


def test_a_keys_runs_are_read_by_campaign_and_key(populated: Runtime) -> None:
    """A launch's and an entry's look-up of a key's earlier runs, and a contact's runs across campaigns."""
    def look_up() -> None:
        with reading(populated.engine) as conn:
            conn.execute(entries._HISTORY.params(campaign_id=JOURNEY, key="Auser00004@example.org")).all()
        contact(populated, "Auser00004@example.org")

    assert_reads(populated, look_up, "ix_runs_campaign_id_target_key")


def test_a_campaigns_live_runs_are_read_by_status(populated: Runtime) -> None:
    """Live runs of a campaign: what entries, pause, terminate, repair and the finish check read."""
    def live() -> None:
        with reading(populated.engine) as conn:
            stuck._live_runs(conn, JOURNEY)

    assert_reads(populated, live, "ix_runs_campaign_id_status")


# --- access reviews: the run history and the digests ---------------------------------------------------------------


@pytest.mark.parametrize(("query", "index"), [
    (HistoryQuery(REVIEW, limit=50), "ix_runs_campaign_id_target_key"),
    (HistoryQuery(REVIEW, status="Revoked", limit=50), "ix_runs_campaign_id_response_target_key"),
    (HistoryQuery(REVIEW, status="Pending Response", limit=50),
     "ix_runs_campaign_id_response_target_key or ix_runs_campaign_id_target_key"),
    (HistoryQuery(REVIEW, approver="approver7@example.org", limit=50), "ix_runs_campaign_id_assignee_target_key"),
    (HistoryQuery(REVIEW, sort="approver", limit=50), "ix_runs_campaign_id_assignee_target_key"),
    (HistoryQuery(REVIEW, sort="time", descending=True, limit=50), "ix_runs_campaign_id_response_at"),
    (HistoryQuery(REVIEW, sort="time", offset=100, limit=50), "ix_runs_campaign_id_response_at"),
])
def test_a_history_page_reads_its_index(populated: Runtime, query: HistoryQuery, index: str) -> None:
    assert_reads(populated, lambda: history_page(populated, query), index)


def test_the_history_counts_read_the_response_index(populated: Runtime) -> None:
    assert_reads(populated, lambda: history_summary(populated, REVIEW), "ix_runs_campaign_id_response_target_key")


def test_the_digests_read_the_runs_to_notify_and_each_approvers_items_from_indexes(populated: Runtime) -> None:
    sender = DigestSender(populated)
    batches = sender._due_batches(NOW)
    marked = [_run(REVIEW, 0, 0, i) for i in range(RUNS)]
    assert {batch.assignee for batch in batches} == {run["assignee"] for run in marked if run["notify"]}
    assert_reads(populated, lambda: sender._due_batches(NOW), "ix_runs_notify")

    def items() -> None:
        with reading(populated.engine) as conn:
            sender._pending_items(conn, batches[0])

    assert_reads(populated, items, "ix_runs_campaign_id_assignee_target_key")


# --- the migration -------------------------------------------------------------------------------------------------


def index_definitions(engine: Engine) -> dict[str, str]:
    """The indexes of runs as the database holds them: name -> its definition."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'runs'"))
        else:
            rows = conn.execute(text("SELECT name, coalesce(sql, '') FROM sqlite_master "
                                     "WHERE type = 'index' AND tbl_name = 'runs'"))
        return {name: definition for name, definition in rows}


def declared(engine: Engine) -> dict[str, bool]:
    """The schema's indexes of runs on this database: name -> whether it is partial."""
    name = engine.dialect.name
    found = {}
    for index in runs.indexes:
        only = getattr(index, "_ddl_if", None)
        if only is None or only.dialect in (None, name):
            found[str(index.name)] = index.dialect_options[name]["where"] is not None
    return found


def test_the_migration_builds_the_declared_indexes_and_its_downgrade_the_old_ones(populated: Runtime) -> None:
    engine = populated.engine
    constraints = {"uq_runs_launch_id_target_key", "pk_runs"} if engine.dialect.name == "postgresql" else {
        "sqlite_autoindex_runs_1"}
    head = index_definitions(engine)
    assert set(head) == set(declared(engine)) | constraints
    for name, partial in declared(engine).items():
        assert ("WHERE" in head[name]) == partial, head[name]
        if partial:
            column = name.removeprefix("ix_runs_")
            assert re.search(rf"WHERE \(?{column} IS NOT NULL\)?$", head[name]), head[name]

    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0010")
    before = index_definitions(engine)
    assert set(before) == (set(head) - {"ix_runs_campaign_id_assignee_target_key"}) | {"ix_runs_campaign_id_assignee"}
    assert not [definition for definition in before.values() if "WHERE" in definition]

    upgrade(engine)
    assert index_definitions(engine) == head
    assert len(history_page(populated, HistoryQuery(REVIEW, approver="approver7@example.org", limit=500))) == len(
        [i for i in range(RUNS) if i % APPROVERS == 7])
