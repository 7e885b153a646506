"""Engines for SQLite (embedded default) and PostgreSQL, with the transaction modes the engine relies on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from ..files import open_private, private_dir
from .types import json_text, json_value

SQLITE_BUSY_TIMEOUT_MS = 30_000
# The write-ahead log is copied into the database file once it holds this many pages (about 40 MB), not SQLite's
# 1 000: a batch of audit records or step records dirties hundreds of index pages, and with the default nearly every
# commit copied them all back again (a million audit records appended at 22 000 a second instead of 36 000 with
# SQLite alone, BENCHMARKS.md). Readers pay nothing measurable; the log file keeps its largest size.
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000
# Each connection keeps up to 16 MiB of database pages, not SQLite's 2 MiB: the indexes a batch writes into (the
# audit trail's four, step records', runs') outgrow 2 MiB early, and every page read back again was a system call
# and a copy. At a million audit records it halved the append's system time (BENCHMARKS.md). The cache fills only
# as pages are read.
SQLITE_CACHE_KIB = 16_384


def normalise_url(url: str) -> str:
    """Let people write plain postgresql:// URLs; we always drive PostgreSQL with psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    kwargs.setdefault("json_serializer", json_text)
    kwargs.setdefault("json_deserializer", json_value)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, **kwargs)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_engine(url: str, database: str | None, **kwargs: Any) -> Engine:
    if database and database != ":memory:" and not database.startswith("file:"):
        _create_private_database(Path(database))
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that writers can BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")  # negative: in KiB, not pages
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that later upgrades can fail with
        # SQLITE_BUSY without waiting, while BEGIN IMMEDIATE queues behind the busy timeout.
        readonly = conn.get_execution_options().get("campaignkit_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _create_private_database(path: Path) -> None:
    """The database file 0600 before SQLite opens it (it would create it 0644 under umask 022); SQLite gives its
    -wal and -shm files the database file's mode."""
    private_dir(path.parent)
    with suppress(FileExistsError):  # an existing database keeps the mode it has
        os.close(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))  # an empty file is an empty database


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction; on SQLite it takes no write lock."""
    with engine.connect() as conn:
        conn = conn.execution_options(campaignkit_readonly=True)
        with conn.begin():
            yield conn


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction, committed on success and rolled back on any error."""
    with engine.begin() as conn:
        yield conn
