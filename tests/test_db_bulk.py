"""BulkInsert writes exactly what SQLAlchemy's own insert writes: the same stored text for times and JSON, the
columns' constant defaults, an ON CONFLICT clause kept; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, bindparam, column, func, insert, select, values
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from campaignkit.core.db import is_postgres, make_engine
from campaignkit.core.db.bulk import BulkInsert, PreparedStatement
from campaignkit.core.db.schema import UTCDateTime

metadata = MetaData()
things = Table(
    "bulk_things", metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", String(20), nullable=False),
    Column("at", UTCDateTime, nullable=True),
    Column("doc", JSON, nullable=False),
    Column("tries", Integer, nullable=False, default=0),
    Column("label", String(20), nullable=True),
)
stamped = Table("bulk_stamped", metadata, Column("id", Integer, primary_key=True),
                Column("stamp", String(20), default=lambda: "made per row"))
ROWS = [
    (1, datetime(2026, 3, 29, 0, 30, tzinfo=UTC), {"a": [1, "é"], "b": None}, "x"),
    (2, datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2))), {}, None),
    (3, None, {"nested": {"k": 1.5}}, "z"),
]


def tables_on(url: str) -> Iterator[Any]:
    engine = make_engine(url)
    metadata.create_all(engine)
    yield engine
    metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    yield from tables_on(database_url)


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Any]:
    yield from tables_on(postgres_url)


def stored(engine: Any) -> list[tuple[Any, ...]]:
    """Each row as the database holds it: times and JSON as their stored text."""
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(
            things.c.id, things.c.owner, func.cast(things.c.at, String), func.cast(things.c.doc, String),
            things.c.tries, things.c.label).order_by(things.c.id))]


def test_rows_are_stored_as_sqlalchemy_stores_them(engine: Any) -> None:
    shared_at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(things), [{"id": i, "owner": "core", "at": at, "doc": doc, "label": label}
                                      for i, at, doc, label in ROWS])
    expected = stored(engine)
    with engine.begin() as conn:
        conn.execute(things.delete())
        BulkInsert(conn, things, ("id", "at", "doc", "label"), shared={"owner": "core"}).execute(ROWS)
    assert stored(engine) == expected
    assert [row[4] for row in expected] == [0, 0, 0]  # the constant default, filled in by both

    with engine.begin() as conn:  # a shared time is converted as a row's own would be
        BulkInsert(conn, things, ("id", "doc"), shared={"owner": "s", "at": shared_at, "tries": 2}).execute(
            [(10, {}), (11, {"x": 1})])
    with engine.connect() as conn:
        found = conn.execute(select(things.c.at, things.c.tries).where(things.c.id >= 10)).all()
    assert found == [(shared_at, 2), (shared_at, 2)]


def test_an_on_conflict_clause_is_kept_and_nothing_is_half_written(engine: Any) -> None:
    with engine.begin() as conn:
        BulkInsert(conn, things, ("id", "doc"), shared={"owner": "first"}).execute([(1, {}), (2, {})])
    with engine.begin() as conn:
        dialect = postgresql if is_postgres(conn) else sqlite
        statement = dialect.insert(things)
        statement = statement.on_conflict_do_update(index_elements=[things.c.id],
                                                    set_={"owner": statement.excluded.owner})
        BulkInsert(conn, things, ("id", "doc"), shared={"owner": "second"}, statement=statement).execute(
            [(2, {}), (3, {})])
    with engine.connect() as conn:
        assert conn.execute(select(things.c.id, things.c.owner).order_by(things.c.id)).all() == [
            (1, "first"), (2, "second"), (3, "second")]
    with pytest.raises(IntegrityError), engine.begin() as conn:  # a duplicate key: the whole batch rolls back
        BulkInsert(conn, things, ("id", "doc"), shared={"owner": "third"}).execute([(4, {}), (1, {})])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(things)).scalar_one() == 3


def test_a_row_with_a_value_too_few_or_too_many_is_refused_naming_the_order(engine: Any) -> None:
    with engine.begin() as conn:
        writer = BulkInsert(conn, things, ("id", "doc"), shared={"owner": "o"})
        for rows in ([(1,), (2,)], [(1, {}, "extra")]):
            with pytest.raises(ValueError, match="each row takes 2 values, in this order: id, doc"):
                writer.execute(rows)
        with pytest.raises(ValueError):  # rows of different lengths
            writer.execute([(1, {}), (2,)])


def test_a_column_left_out_whose_default_is_computed_per_row_is_named(engine: Any) -> None:
    with engine.begin() as conn, pytest.raises(ValueError, match=r"bulk_stamped\.stamp: give its value"):
        BulkInsert(conn, stamped, ("id",))


def test_several_rows_per_statement_store_the_same_and_count_what_changed(engine: Any) -> None:
    rows = [(i, at, doc, label) for i, (_, at, doc, label) in enumerate(ROWS * 3, start=1)]  # 9 rows, pages of 4
    with engine.begin() as conn:
        conn.execute(insert(things), [{"id": i, "owner": "o", "at": at, "doc": doc, "label": label}
                                      for i, at, doc, label in rows])
    expected = stored(engine)
    with engine.begin() as conn:
        conn.execute(things.delete())
        dialect = postgresql if is_postgres(conn) else sqlite
        statement = dialect.insert(things)
        statement = statement.on_conflict_do_update(index_elements=[things.c.id],
                                                    set_={"label": statement.excluded.label})
        upsert = PreparedStatement(conn.dialect, statement, ("id", "at", "doc", "label"), shared={"owner": "o"},
                                   defaults=lambda name: 0, rows_per_statement=4)
        assert upsert.execute(conn, rows) == 9
    assert stored(engine) == expected
    with engine.begin() as conn:  # again: every row conflicts and is updated, page by page
        assert upsert.execute(conn, [(i, at, doc, "again") for i, at, doc, _ in rows]) == 9
    assert [row[5] for row in stored(engine)] == ["again"] * 9


def test_fetch_gives_back_what_returning_returns_for_every_page_of_rows(engine: Any) -> None:
    """As the worker records first attempts: rows new and rows there before, in pages of 4, each row's stored
    time given back (the one there before wins), on both databases."""
    before, now = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(things), [{"id": i, "owner": "o", "at": before, "doc": {}} for i in (2, 7)])
        dialect = postgresql if is_postgres(conn) else sqlite
        statement = dialect.insert(things)
        statement = statement.on_conflict_do_update(index_elements=[things.c.id], set_={"at": things.c.at}
                                                    ).returning(things.c.id, things.c.at)
        record = PreparedStatement(conn.dialect, statement, ("id", "at"), shared={"owner": "o", "doc": {}},
                                   defaults=lambda name: 0, rows_per_statement=4)
        found = record.fetch(conn, [(i, now) for i in range(1, 10)])
    as_time = things.c.at.type.dialect_impl(engine.dialect).result_processor(engine.dialect, None) or (lambda v: v)
    assert sorted((i, as_time(at)) for i, at in found) == [
        (i, before if i in (2, 7) else now) for i in range(1, 10)]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(things)).scalar_one() == 9


@pytest.mark.postgres  # PostgreSQL's plan cache: SQLite plans every statement anew
@pytest.mark.parametrize("planned_each_time", [False, True])
def test_a_statement_planned_each_time_keeps_no_plan_made_while_its_table_was_empty(
        postgres_engine: Any, planned_each_time: bool) -> None:
    """A queue's delete (step_starts'): a plan the server kept from when the table was empty would scan it whole
    at every later batch. Executed often enough for the driver to prepare it, it is still never kept."""
    engine = postgres_engine
    keys = values(column("id", Integer), name="v").data([(bindparam("d_id", type_=Integer),)])
    delete = PreparedStatement(engine.dialect, things.delete().where(things.c.id == keys.c.id), ("d_id",),
                               rows_per_statement=100, planned_each_time=planned_each_time)
    with engine.begin() as conn:
        for _ in range(10):  # psycopg prepares a statement on its 5th execution
            assert delete.execute(conn, [(1,), (2,)]) == 0
        conn.execute(insert(things), [{"id": i, "owner": "o", "doc": {}} for i in range(1, 201)])
        assert delete.execute(conn, [(i,) for i in range(1, 151)]) == 150
        kept = conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements "
                                    "WHERE statement LIKE 'DELETE FROM bulk_things%%'").scalar_one()
    assert kept == (0 if planned_each_time else 1)
