"""Listings as a Rich table, CSV or JSON: one renderer for every command that prints rows."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..csv_export import CsvWriter

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def error_line(label: str, message: str) -> None:
    """One line on stderr; the message is printed as text, never read as Rich markup."""
    errors.print(Text.assemble((f"{label}: ", "bold red"), message), soft_wrap=True)


def info(message: str) -> None:
    console.print(Text(message), soft_wrap=True)


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return value


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: Format, title: str | None = None) -> None:
    if fmt is Format.json:
        sys.stdout.write(json.dumps([{c: row.get(c) for c in columns} for row in rows], default=_json_default,
                                    ensure_ascii=False, indent=2) + "\n")
    elif fmt is Format.csv:
        writer = CsvWriter(sys.stdout)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else plain(row.get(c)) for c in columns])
    else:
        table = Table(title=title, show_lines=False)
        for column in columns:
            table.add_column(column.replace("_", " "), overflow="fold")
        for row in rows:
            table.add_row(*["" if row.get(c) is None else str(plain(row.get(c))) for c in columns])
        console.print(table)


def render_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=_json_default, ensure_ascii=False, indent=2) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
