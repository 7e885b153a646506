"""UTCDateTime on SQLite stores exactly the text SQLAlchemy's DATETIME stores, so that times written before and after
its own formatting compare, sort and read back alike."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.dialects import sqlite

from campaignkit.core.db import make_engine
from campaignkit.core.db.types import UTCDateTime, json_text, json_value

MOMENTS = [
    datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # no microseconds: still written with six digits
    datetime(2026, 3, 29, 3, 30, 0, 123, tzinfo=timezone(timedelta(hours=2))),  # another zone: stored in UTC
    datetime(2026, 10, 25, 1, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    datetime(1, 1, 1, 0, 0, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999),  # naive is UTC already
    datetime(2030, 1, 1, 12, 0, 0, 1),
]


def sqlalchemy_text(moment: datetime) -> str:
    naive = moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)
    dialect = sqlite.dialect()
    return DateTime().dialect_impl(dialect).bind_processor(dialect)(naive)


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_a_time_is_stored_as_sqlalchemys_datetime_text(moment: datetime) -> None:
    dialect = sqlite.dialect()
    assert UTCDateTime().dialect_impl(dialect).bind_processor(dialect)(moment) == sqlalchemy_text(moment)


def test_times_read_back_as_the_same_instants_and_sort_by_time(tmp_path) -> None:
    metadata = MetaData()
    table = Table("times", metadata, Column("id", Integer, primary_key=True), Column("at", UTCDateTime))
    engine = make_engine(f"sqlite:///{tmp_path / 'times.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": i, "at": moment} for i, moment in enumerate([*MOMENTS, None])])
        stored = conn.execute(text("SELECT at FROM times ORDER BY id")).scalars().all()
        assert stored == [*map(sqlalchemy_text, MOMENTS), None]
        read = conn.execute(select(table.c.at).order_by(table.c.at.is_(None), table.c.at)).scalars().all()
    expected = sorted(m.replace(tzinfo=UTC) if m.tzinfo is None else m.astimezone(UTC) for m in MOMENTS)
    assert read == [*expected, None]
    engine.dispose()


DOCUMENTS = [{"a": [1, "é", None, 1.5, True], "b": {"nested": "x\"y\n"}}, {1: "an integer key"}, [], "text", 3]


def test_json_documents_are_stored_as_json_dumps_writes_them_and_read_back(database_url: str) -> None:
    """The engine's serializer (one encoder made once) writes json.dumps' text, and its deserializer reads the
    documents back as they were written, on both databases."""
    table = Table("json_docs", MetaData(), Column("id", Integer, primary_key=True), Column("doc", JSON))
    engine = make_engine(database_url)
    table.create(engine)
    try:
        with engine.begin() as conn:
            conn.execute(insert(table), [{"id": i, "doc": doc} for i, doc in enumerate(DOCUMENTS)])
        with engine.connect() as conn:
            stored = conn.execute(select(func.cast(table.c.doc, String)).order_by(table.c.id)).scalars().all()
            read = conn.execute(select(table.c.doc).order_by(table.c.id)).scalars().all()
        assert stored == [json.dumps(doc) for doc in DOCUMENTS]
        assert [json_text(doc) for doc in DOCUMENTS] == stored
        assert read == [json.loads(json.dumps(doc)) for doc in DOCUMENTS]  # an integer key reads back as text
        with pytest.raises(TypeError, match="Object of type datetime is not JSON serializable"):
            json_text({"at": datetime(2026, 1, 1)})
    finally:
        table.drop(engine)
        engine.dispose()


READ_AS_JSON_LOADS = ['{"a": [1, "\\u00e9", null, 1.5e3, true], "b": {"c": "x\\"y"}}', "[]", '"text"', "3", "NaN",
                      ' {"padded": 1}\n', b'{"bytes": 1}']
NOT_JSON = ["", "[1, 2", '{"a": 1} x', "{'a': 1}", " "]


def test_json_documents_are_read_as_json_loads_reads_them() -> None:
    """The engine's deserializer (the decoder's scanner called directly) gives json.loads' values and errors."""
    for document in READ_AS_JSON_LOADS:
        assert json.dumps(json_value(document)) == json.dumps(json.loads(document)), document  # NaN is not NaN
    for document in NOT_JSON:
        with pytest.raises(json.JSONDecodeError) as expected:
            json.loads(document)
        with pytest.raises(json.JSONDecodeError, match=re.escape(str(expected.value))):
            json_value(document)
