"""The column types the schema's tables share: times stored as naive UTC and read back aware, and integer keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Integer keys autoincrement as BIGINT on PostgreSQL and as the rowid alias on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, hands back aware UTC: one representation on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)

    def bind_processor(self, dialect: Dialect) -> Any:
        # SQLite: the text SQLAlchemy's DATETIME stores ("YYYY-MM-DD HH:MM:SS.ffffff", naive UTC), in one C call
        # rather than process_bind_param and then DATETIME's own formatting: half the cost, on every row a worker
        # batch or an audit append writes (tests/test_db_types.py holds it to SQLAlchemy's text).
        if dialect.name == "sqlite":
            return _sqlite_time
        return super().bind_processor(dialect)


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None and value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without an aware value's "+00:00"
