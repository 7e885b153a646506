"""WAL checkpoints off a busy writer's commit path (SQLite).

By default the commit that takes SQLite's write-ahead log past SQLITE_WAL_AUTOCHECKPOINT_PAGES copies the log into
the database file there and then, with its fsyncs: a stall of a few hundred milliseconds every so many thousand rows,
seen by every request waiting on that commit. A writer that answers people (the tracking hits) turns that off on its own
connection and leaves the copying to a thread of its own, which checkpoints in PASSIVE mode: it never takes the
write lock, so the writer goes on appending to the log while the database file is brought up to date.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from . import SQLITE_WAL_AUTOCHECKPOINT_PAGES

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 0.5


@contextmanager
def checkpoints_elsewhere(engine: Engine, conn: Connection, interval: float = INTERVAL_SECONDS) -> Iterator[None]:
    """While inside, ``conn`` commits without checkpointing and a thread checkpoints ``engine``'s database every
    ``interval`` seconds; nothing changes on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA wal_autocheckpoint=0")
    stop = threading.Event()
    thread = threading.Thread(target=_checkpoint_every, args=(engine, interval, stop), name="campaignkit-checkpoints",
                              daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        raw.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")  # for the pool's next user


def _checkpoint_every(engine: Engine, interval: float, stop: threading.Event) -> None:
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        while not stop.wait(interval):
            try:
                raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # logged, tried again next time
                log.warning("WAL checkpoint failed: %s", exc)
