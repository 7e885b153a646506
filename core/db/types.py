"""The column types the schema's tables share: times stored as naive UTC and read back aware, integer keys, and the
text JSON documents are stored as."""

from __future__ import annotations

import json
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


def json_text(value: Any) -> str:
    """``json.dumps(value)``, the same text, from one encoder made once (the engine's ``json_serializer``).

    json.dumps builds its C encoder anew for every value, two thirds of the time of a small document, and a worker
    writes several per step (a run's context, each step's detail). Made once, the encoder cannot check for cycles
    (its record of the containers it is in would outlive a failed call): a document with a cycle, which JSON
    itself cannot express, raises RecursionError instead of ValueError."""
    if _encode is None:  # an interpreter without the C accelerator
        return json.dumps(value)
    return "".join(_encode(value, 0))


_make_encoder = json.encoder.c_make_encoder  # type: ignore[attr-defined]
_encode = None if _make_encoder is None else _make_encoder(
    None, json.JSONEncoder().default, json.encoder.encode_basestring_ascii, None,  # type: ignore[attr-defined]
    ": ", ", ", False, False, True)  # json.dumps' defaults: separators, keys unsorted, NaN allowed


def json_value(text: str | bytes) -> Any:
    """``json.loads(text)``, the same value, read by the decoder's C scanner directly (the engine's
    ``json_deserializer``).

    json.loads wraps the scanner in Python (the whitespace around a document, its end), two thirds of the time of a
    small document, and a worker reads two per run it claims (its target, its context). A document the scanner does
    not read whole at once (bytes, whitespace around it, something after it, an error) goes to json.loads, which
    reads it or says what is wrong as it always did."""
    if isinstance(text, str):
        try:
            value, end = _scan(text, 0)
        except (StopIteration, ValueError):
            end = -1
        if end == len(text):
            return value
    return json.loads(text)


# json.loads' defaults; the C scanner clears its memo after each document
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
