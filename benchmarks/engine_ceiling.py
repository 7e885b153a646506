"""The engine benchmark's ceiling: the engine's own SQL, with its values already prepared, run straight through the
DB driver.

An untimed engine run on a copy of the launched database records, at the cursor, every statement SQLAlchemy hands
the driver with its driver-level parameters (times as the dialect writes them, JSON as text or the driver's JSON
wrapper) and every commit and rollback. Nothing is hard-coded, so the ceiling follows whatever the engine executes.
The record is spilled to a file a transaction or so at a time, so memory stays flat. A replay on a second copy of
the launched database sends the same statements in the same transactions through raw DBAPI connections, timed:
what remains is the database's and the driver's work, the floor the engine's Python sits on. It runs a share at a
time, so that the benchmark can replay alongside an engine run, the same share after each of the engine's batches.
"""

from __future__ import annotations

import json
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event

SPILL_EVERY = 2_000  # parameter rows held before the record is written out


class Capture:
    """Records what ``engine`` sends its driver, between ``start()`` and ``stop()``, into ``path``."""

    def __init__(self, engine: Engine, path: Path) -> None:
        self.engine = engine
        self.path = path
        self._out = path.open("wb")
        self._held: list[tuple[Any, ...]] = []
        self._rows = 0
        self.rows = 0  # the whole record's size: parameter rows, plus one per entry
        self._lock = threading.Lock()  # plugin steps on the worker's threads may use the database too
        self.statements = 0
        self.commits = 0

    def start(self) -> Capture:
        # The dialect's calls of the driver: after SQLAlchemy has batched rows into one INSERT (insertmanyvalues).
        event.listen(self.engine, "do_executemany", self._many)
        event.listen(self.engine, "do_execute", self._one)
        event.listen(self.engine, "do_execute_no_params", self._bare)
        event.listen(self.engine, "commit", self._commit)
        event.listen(self.engine, "rollback", self._rollback)
        return self

    def stop(self) -> None:
        event.remove(self.engine, "do_executemany", self._many)
        event.remove(self.engine, "do_execute", self._one)
        event.remove(self.engine, "do_execute_no_params", self._bare)
        event.remove(self.engine, "commit", self._commit)
        event.remove(self.engine, "rollback", self._rollback)
        self._spill()
        self._out.close()

    def _many(self, cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        self._hold((id(cursor.connection), "many", statement, parameters))

    def _one(self, cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        self._hold((id(cursor.connection), "one", statement, parameters))

    def _bare(self, cursor: Any, statement: str, context: Any) -> None:
        self._hold((id(cursor.connection), "bare", statement))

    def _commit(self, conn: Connection) -> None:
        self._hold((id(conn.connection.dbapi_connection), "commit"))
        self.commits += 1

    def _rollback(self, conn: Connection) -> None:
        self._hold((id(conn.connection.dbapi_connection), "rollback"))

    def _hold(self, entry: tuple[Any, ...]) -> None:
        size = _rows(entry)
        with self._lock:
            self._held.append(entry)
            self.statements += entry[1] in ("many", "one", "bare")
            self._rows += size
            self.rows += size
            if entry[1] in ("commit", "rollback") and self._rows >= SPILL_EVERY:
                self._spill()

    def _spill(self) -> None:
        if self._held:
            pickle.dump(self._held, self._out, protocol=pickle.HIGHEST_PROTOCOL)
            self._held, self._rows = [], 0


def _chunks(path: Path) -> Iterator[list[tuple[Any, ...]]]:
    with path.open("rb") as spilled:
        while True:
            try:
                yield pickle.load(spilled)
            except EOFError:
                return


def _same(text: str) -> str:
    return text


def _json_ready(parameters: Any) -> Any:
    """psycopg serialises its JSON wrappers as it sends them: serialise them beforehand, as a prepared value."""
    from psycopg.types.json import Json

    def one(value: Any) -> Any:
        return Json(json.dumps(value.obj), dumps=_same) if isinstance(value, Json) else value

    if isinstance(parameters, dict):
        return {key: one(value) for key, value in parameters.items()}
    return type(parameters)(one(value) for value in parameters)


def _prepared(entry: tuple[Any, ...]) -> tuple[Any, ...]:
    if entry[1] == "many":
        return (*entry[:3], [_json_ready(row) for row in entry[3]])
    if entry[1] == "one":
        return (*entry[:3], _json_ready(entry[3]))
    return entry


class Replay:
    """The record in ``path`` run on ``engine``'s database through raw DBAPI connections (one per connection the
    engine used), reading back every row a statement returns, a share at a time (``advance``): the wall and CPU
    seconds spent in the driver add up in ``seconds`` and ``cpu`` (on SQLite the CPU is all the database's work too;
    on PostgreSQL the server's is not in it). ``rows``: the record's size, as Capture counted it."""

    def __init__(self, engine: Engine, path: Path, rows: int) -> None:
        self.engine = engine
        self.seconds = self.cpu = 0.0
        self._postgres = engine.dialect.name == "postgresql"
        self._chunks = _chunks(path)
        self._rows = max(rows, 1)
        self._done = 0  # rows replayed, counted as Capture counts them
        self._raw: dict[int, Any] = {}  # captured connection -> a raw connection of ours (pooled: set up on connect)

    def advance(self, share: float) -> None:
        """Replay whole transactions until at least ``share`` (0 to 1) of the record has run; 1 runs the rest."""
        while self._done < share * self._rows or share >= 1:
            chunk = next(self._chunks, None)
            if chunk is None:
                return
            self._run(chunk)

    def close(self) -> None:
        for connection in self._raw.values():
            connection.driver_connection.rollback()
            connection.close()
        self._raw.clear()

    def _run(self, chunk: list[tuple[Any, ...]]) -> None:
        if self._postgres:
            chunk = [_prepared(entry) for entry in chunk]
        for entry in chunk:  # connections first, out of the timing
            if entry[0] not in self._raw:
                self._raw[entry[0]] = self.engine.raw_connection()
        began, began_cpu = time.perf_counter(), time.process_time()
        for entry in chunk:
            dbapi = self._raw[entry[0]].driver_connection
            kind = entry[1]
            if kind == "commit":
                dbapi.commit()
            elif kind == "rollback":
                dbapi.rollback()
            else:
                cursor = dbapi.cursor()
                if kind == "many":
                    cursor.executemany(entry[2], entry[3])
                elif kind == "bare":
                    cursor.execute(entry[2])
                else:
                    cursor.execute(entry[2], entry[3])
                if cursor.description is not None:
                    cursor.fetchall()
                cursor.close()
        self.seconds += time.perf_counter() - began
        self.cpu += time.process_time() - began_cpu
        self._done += sum(_rows(entry) for entry in chunk)


def _rows(entry: tuple[Any, ...]) -> int:
    """An entry's size, as the capture spills and the replay advances by it: its parameter rows, plus one."""
    return len(entry[3]) + 1 if entry[1] == "many" else 1 if entry[1] in ("commit", "rollback") else 2
