"""Many rows of one table written at once, for the paths that write thousands (a launch).

SQLAlchemy's executemany builds a parameter dictionary and runs every column's conversion for each row; at a
100 000-recipient launch that was more time than SQLite's own work. Here the statement is compiled once, each
value is converted by its column's own type (the schema stays the one source of truth for how a time or a JSON
document is stored), a value the rows share (the campaign, the launch's time) is converted once, and the driver
gets plain tuples or dictionaries, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Insert, Table, insert


class BulkInsert:
    """``statement`` (an INSERT into ``table``, with any ON CONFLICT clause) for rows of the ``columns`` named,
    each row a sequence of their values in that order, plus ``shared`` values that every row has."""

    def __init__(self, conn: Connection, table: Table, columns: Sequence[str], *,
                 shared: Mapping[str, Any] | None = None, statement: Insert | None = None) -> None:
        self.conn = conn
        dialect = conn.dialect
        shared = dict(shared or {})
        compiled = (statement if statement is not None else insert(table)).compile(
            dialect=dialect, column_keys=[*columns, *shared])
        for name in compiled.params:  # a column left out: its default, as an insert() would
            if name not in shared and name not in columns:
                shared[name] = _default(table, name)
        self.sql = compiled.string
        convert: dict[str, Callable[[Any], Any] | None] = {
            name: table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in (*columns, *shared)}
        shared = {name: _converted(convert[name], value) for name, value in shared.items()}
        # Each row's parameters: the shared ones in place, the row's own values put in their slots.
        order = compiled.positiontup or [*columns, *shared]  # positiontup: a qmark/format driver's order
        if len(set(order)) != len(order):
            raise ValueError("a statement that uses a parameter twice is not supported")
        self.by_name = compiled.positiontup is None
        self.template = [shared.get(name) for name in order]
        self.slots = tuple((order.index(name), convert[name]) for name in columns)
        self.names = tuple(order)

    def execute(self, rows: Iterable[Sequence[Any]]) -> None:
        prepared = [self._prepared(row) for row in rows]
        if prepared:
            self.conn.exec_driver_sql(self.sql, prepared)  # type: ignore[arg-type]

    def _prepared(self, row: Sequence[Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = self.template.copy()
        for (slot, convert), value in zip(self.slots, row, strict=True):
            values[slot] = value if convert is None or value is None else convert(value)
        return dict(zip(self.names, values, strict=True)) if self.by_name else tuple(values)


def _converted(convert: Callable[[Any], Any] | None, value: Any) -> Any:
    return value if convert is None or value is None else convert(value)


def _default(table: Table, name: str) -> Any:
    default = table.c[name].default
    if default is None or not default.is_scalar:  # type: ignore[attr-defined]
        raise ValueError(f"{table.name}.{name}: give its value; only a constant default is filled in")
    return default.arg  # type: ignore[attr-defined]
