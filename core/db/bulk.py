"""Many rows through one statement at once, for the paths that write thousands (a launch, a worker's batch).

SQLAlchemy's executemany builds a parameter dictionary and runs every column's conversion for each row; at a
100 000-recipient launch, and in the worker's hot path, that was more time than the database's own work. Here the
statement is compiled once per dialect, each value is converted by its parameter's own type (the schema stays the
one source of truth for how a time or a JSON document is stored), a value the rows share (the campaign, the
launch's time) is converted once, a time several rows carry (a worker wave's) once per call, and the driver gets
plain tuples or dictionaries, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, DateTime, Dialect, Insert, Table, UpdateBase, insert
from sqlalchemy.types import TypeEngine

Convert = Callable[[Any], Any]


class PreparedStatement:
    """``statement`` compiled for ``dialect`` with the parameters ``names``, each row a sequence of their values in
    that order, plus ``shared`` values that every row has. A parameter's type is the statement's own (a column's,
    or a bindparam's ``type_``)."""

    def __init__(self, dialect: Dialect, statement: UpdateBase, names: Sequence[str], *,
                 shared: Mapping[str, Any] | None = None, defaults: Callable[[str], Any] | None = None) -> None:
        shared = dict(shared or {})
        compiled = statement.compile(dialect=dialect, column_keys=[*names, *shared])
        for name in compiled.params:  # a parameter the caller left out: its default, if the caller knows one
            if name not in shared and name not in names:
                if defaults is None:
                    raise ValueError(f"parameter {name!r} has no value")
                shared[name] = defaults(name)
        self.sql = compiled.string
        types = {name: bind.type for name, bind in compiled.binds.items()}
        convert = {name: _processor(types[name], dialect) for name in (*names, *shared)}
        shared = {name: _converted(convert[name], value) for name, value in shared.items()}
        # Each row's parameters: the shared ones in place, the row's own values put in their slots.
        order = compiled.positiontup or [*names, *shared]  # positiontup: a qmark/format driver's order
        if len(set(order)) != len(order):
            raise ValueError("a statement that uses a parameter twice is not supported")
        self.by_name = compiled.positiontup is None
        self.template = [shared.get(name) for name in order]
        self.slots = tuple((order.index(name), convert[name], _is_time(types[name])) for name in names)
        self.names = tuple(order)

    def execute(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> int:
        """Returns how many rows the statement changed (the driver's count over all of them)."""
        prepared = self.prepare(rows)
        if not prepared:
            return 0
        return conn.exec_driver_sql(self.sql, prepared).rowcount  # type: ignore[arg-type]

    def prepare(self, rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...] | dict[str, Any]]:
        """The driver's parameters for ``rows``; times are converted once per distinct value (a wave shares them)."""
        times: dict[Any, Any] = {}
        template, slots, prepared = self.template, self.slots, []
        for row in rows:
            values = template.copy()
            for (slot, convert, is_time), value in zip(slots, row, strict=True):
                if convert is None or value is None:
                    values[slot] = value
                elif is_time:
                    found = times.get(value)
                    values[slot] = found if found is not None else times.setdefault(value, convert(value))
                else:
                    values[slot] = convert(value)
            prepared.append(dict(zip(self.names, values, strict=True)) if self.by_name else tuple(values))
        return prepared


class BulkInsert:
    """``statement`` (an INSERT into ``table``, with any ON CONFLICT clause) for rows of the ``columns`` named,
    each row a sequence of their values in that order, plus ``shared`` values that every row has; a column left
    out gets its constant default, as an insert() would."""

    def __init__(self, conn: Connection, table: Table, columns: Sequence[str], *,
                 shared: Mapping[str, Any] | None = None, statement: Insert | None = None) -> None:
        self.conn = conn
        self.prepared = PreparedStatement(conn.dialect, statement if statement is not None else insert(table),
                                          columns, shared=shared, defaults=lambda name: _default(table, name))

    def execute(self, rows: Iterable[Sequence[Any]]) -> None:
        self.prepared.execute(self.conn, rows)


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
