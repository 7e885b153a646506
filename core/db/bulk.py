"""Many rows through one statement at once, for the paths that write thousands (a launch, a worker's batch).

SQLAlchemy's executemany builds a parameter dictionary and runs every column's conversion for each row; at a
100 000-recipient launch, and in the worker's hot path, that was more time than the database's own work. Here the
statement is compiled once per dialect, each value is converted by its parameter's own type (the schema stays the
one source of truth for how a time or a JSON document is stored), a value the rows share (the campaign, the
launch's time) is converted once, a time several rows carry (a worker wave's) once per call, and the driver gets
plain tuples or dictionaries, in the caller's transaction.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, DateTime, Dialect, Insert, Table, UpdateBase, insert
from sqlalchemy.types import TypeEngine

Convert = Callable[[Any], Any]
SQLITE_MAX_PARAMETERS = 32_766  # SQLITE_MAX_VARIABLE_NUMBER's default since SQLite 3.32


class PreparedStatement:
    """``statement`` compiled for ``dialect`` with the parameters ``names``, each row a sequence of their values in
    that order, plus ``shared`` values that every row has. A parameter's type is the statement's own (a column's,
    or a bindparam's ``type_``).

    ``rows_per_statement``: on PostgreSQL, a statement with one row of VALUES (an INSERT, an UPDATE ... FROM
    (VALUES ...)) takes up to that many rows at once, as one array per column (``SELECT * FROM unnest(...)``), which
    costs the server far less than a statement per row, and the driver no more: the statement's text stays short
    and the same, so both keep it prepared. Only for rows that never conflict with each other (ON CONFLICT DO
    UPDATE cannot touch a row twice in one statement, nor an UPDATE update it twice). On SQLite ``execute`` runs
    the statement once per row in the driver (as cheap as one statement there), and ``fetch``, which needs the rows
    RETURNING gives back, repeats the row of VALUES up to that many times.

    ``planned_each_time``: on PostgreSQL the statement is planned at every execution, never from a plan the server
    cached for it, for a statement that joins its rows to a table that starts empty and fills up (a queue). The
    driver prepares a statement it runs often, and the server then keeps one generic plan for it: made while the
    table was empty, that plan scans the whole table at each execution ever after."""

    def __init__(self, dialect: Dialect, statement: UpdateBase, names: Sequence[str], *,
                 shared: Mapping[str, Any] | None = None, defaults: Callable[[str], Any] | None = None,
                 rows_per_statement: int = 1, planned_each_time: bool = False) -> None:
        shared = dict(shared or {})
        several = rows_per_statement > 1 and dialect.name == "postgresql"
        if several:  # positional parameters, so that pages of rows flatten into one parameter list
            dialect = copy.copy(dialect)
            dialect.paramstyle, dialect.positional = "format", True
        # for_executemany: no RETURNING of the new key, which PostgreSQL's single-row INSERT would otherwise get
        compiled = statement.compile(dialect=dialect, column_keys=[*names, *shared], for_executemany=True)
        for name in compiled.params:  # a parameter the caller left out: its default, if the caller knows one
            if name not in shared and name not in names:
                if defaults is None:
                    raise ValueError(f"parameter {name!r} has no value")
                shared[name] = defaults(name)
        self.sql = compiled.string
        types = {name: bind.type for name, bind in compiled.binds.items()}
        convert = {name: _processor(types[name], dialect) for name in (*names, *shared)}
        shared = {name: _converted(convert[name], value) for name, value in shared.items()}
        order = compiled.positiontup or [*names, *shared]  # positiontup: a qmark/format driver's order
        if len(set(order)) != len(order):
            raise ValueError("a statement that uses a parameter twice is not supported")
        self.by_name = compiled.positiontup is None
        self.names = tuple(order)
        # The rows' values are converted column by column (a comprehension per column whose type converts it), the
        # shared values are columns of one value, and the columns are then taken in the driver's order.
        self._shared = tuple(shared.values())
        sources = [*names, *shared]
        self._order = [sources.index(name) for name in order]
        self._given = tuple(names)
        self._converts = tuple((index, function, _is_time(types[name])) for index, name in enumerate(names)
                               if (function := convert[name]) is not None)
        self._page = rows_per_statement if several else 1
        self._planned_each_time = planned_each_time and dialect.name == "postgresql"
        if several:
            self.sql = _as_arrays(self.sql)
        # fetch on SQLite: rows per statement, within its limit of host parameters
        self._rows_per_fetch = max(1, min(rows_per_statement, SQLITE_MAX_PARAMETERS // len(self.names)))
        self._multi_row: dict[int, str] = {}  # fetch on SQLite: the statement for that many rows

    def execute(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> int:
        """Returns how many rows the statement changed (the driver's count over all of them)."""
        if self._page == 1:
            prepared = self.prepare(rows)
            return conn.exec_driver_sql(self.sql, prepared).rowcount if prepared else 0  # type: ignore[arg-type]
        return sum(self._run(conn, page) for page in self._pages(self._columns(rows)))

    def _run(self, conn: Connection, parameters: tuple[Any, ...]) -> int:
        if not self._planned_each_time:
            return conn.exec_driver_sql(self.sql, parameters).rowcount
        with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(self.sql, parameters, prepare=False)  # psycopg's own option: never prepared
            return int(cursor.rowcount)

    def fetch(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> list[Any]:
        """The rows a statement with RETURNING gives back, as the driver returns them (no result types applied):
        an executemany returns none, so the rows go as several rows of one statement (see rows_per_statement)."""
        found: list[Any] = []
        if self._page > 1:
            for arrays in self._pages(self._columns(rows)):
                found.extend(conn.exec_driver_sql(self.sql, arrays).all())
            return found
        if self.by_name or conn.dialect.name != "sqlite":
            raise ValueError("fetch takes several rows at once on PostgreSQL (rows_per_statement) or SQLite only")
        prepared = self.prepare(rows)
        for at in range(0, len(prepared), self._rows_per_fetch):
            page = prepared[at:at + self._rows_per_fetch]
            sql = self._multi_row.get(len(page))
            if sql is None:
                sql = self._multi_row[len(page)] = _repeated(self.sql, len(page))
            found.extend(conn.exec_driver_sql(sql, tuple(value for row in page for value in row)).all())
        return found

    def prepare(self, rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...] | dict[str, Any]]:
        """The driver's parameters for ``rows``, row by row."""
        columns = self._columns(rows)
        if self.by_name:
            return [dict(zip(self.names, values, strict=True)) for values in zip(*columns, strict=True)]
        return list(zip(*columns, strict=True))

    def _columns(self, rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
        """The driver's parameters for ``rows``, column by column in the driver's order (none for no rows). Each
        value is converted by its parameter's type; a time once per distinct value (a wave's rows share them)."""
        given = [list(column) for column in zip(*rows, strict=True)]
        if not given:
            return []
        if len(given) != len(self._given):
            raise ValueError(f"each row takes {len(self._given)} values, in this order: {', '.join(self._given)}")
        for index, convert, is_time in self._converts:
            column = given[index]
            if is_time:
                distinct = {value: convert(value) for value in set(column) if value is not None}
                given[index] = [distinct.get(value) for value in column]  # None stays None
            else:
                given[index] = [None if value is None else convert(value) for value in column]
        count = len(given[0])
        given.extend([value] * count for value in self._shared)
        return [given[index] for index in self._order]

    def _pages(self, columns: list[list[Any]]) -> Iterator[tuple[list[Any], ...]]:
        """PostgreSQL: the columns, ``rows_per_statement`` rows at a time, as the arrays of one statement."""
        count = len(columns[0]) if columns else 0
        for at in range(0, count, self._page):
            yield tuple(column[at:at + self._page] for column in columns)


class BulkInsert:
    """``statement`` (an INSERT into ``table``, with any ON CONFLICT clause) for rows of the ``columns`` named,
    each row a sequence of their values in that order, plus ``shared`` values that every row has; a column left
    out gets its constant default, as an insert() would. ``rows_per_statement``: as PreparedStatement's."""

    def __init__(self, conn: Connection, table: Table, columns: Sequence[str], *,
                 shared: Mapping[str, Any] | None = None, statement: Insert | None = None,
                 rows_per_statement: int = 1) -> None:
        self.conn = conn
        self.prepared = PreparedStatement(conn.dialect, statement if statement is not None else insert(table),
                                          columns, shared=shared, defaults=lambda name: _default(table, name),
                                          rows_per_statement=rows_per_statement)

    def execute(self, rows: Iterable[Sequence[Any]]) -> None:
        self.prepared.execute(self.conn, rows)

    def fetch(self, rows: Iterable[Sequence[Any]]) -> list[Any]:
        """What the statement's RETURNING gives back (PostgreSQL, several rows per statement)."""
        return self.prepared.fetch(self.conn, rows)


def _as_arrays(sql: str) -> str:
    """PostgreSQL: a statement's one row of values, "VALUES (%s::T, ...)", as rows from one array per column,
    "SELECT * FROM unnest(%s::T[], ...)" (an INSERT's, or an UPDATE ... FROM (VALUES ...)'s)."""
    start = sql.index("VALUES (")
    end = sql.index(")", start)  # the casts hold no parentheses: checked below
    placeholders = sql[start + len("VALUES ("):end].split(", ")
    if not all(p.startswith("%s::") and "(" not in p for p in placeholders):
        raise ValueError(f"each value needs a type cast of its own to become an array: {sql[start:end + 1]}")
    # %b: arrays go in the binary format, so their text (JSON documents) needs no quoting or escaping
    arrays = ", ".join("%b" + p.removeprefix("%s") + "[]" for p in placeholders)
    return f"{sql[:start]}SELECT * FROM unnest({arrays}){sql[end + 1:]}"


def _repeated(sql: str, count: int) -> str:
    """A statement's one row of values, "VALUES (?, ...)", as ``count`` such rows (SQLite)."""
    start = sql.index("VALUES (")
    end = sql.index(")", start) + 1
    row = sql[start + len("VALUES "):end]
    if "(" in row[1:]:
        raise ValueError(f"a row of plain parameters is needed to repeat it: {row}")
    return f"{sql[:start]}VALUES {', '.join([row] * count)}{sql[end:]}"


def _processor(type_: TypeEngine[Any], dialect: Dialect) -> Convert | None:
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _is_time(type_: TypeEngine[Any]) -> bool:
    return isinstance(getattr(type_, "impl", type_), DateTime)


def _converted(convert: Convert | None, value: Any) -> Any:
    return value if convert is None or value is None else convert(value)


def _default(table: Table, name: str) -> Any:
    default = table.c[name].default
    if default is None or not default.is_scalar:  # type: ignore[attr-defined]
        raise ValueError(f"{table.name}.{name}: give its value; only a constant default is filled in")
    return default.arg  # type: ignore[attr-defined]
