"""The one CSV writer: every CSV campaignkit writes (listings, history, audit exports) goes through it.

Whoever opens the file in Excel, LibreOffice or Google Sheets gets any cell starting with =, +, -, @, a tab or a
carriage return read as a formula, and such cells come from outside: a name in an audience CSV, a target key, audit
details, an event's payload. A formula can fetch URLs carrying the sheet's data or, with DDE, run commands. As OWASP
recommends ("CSV Injection"), such a cell is written with a single quote in front, which spreadsheets show as text.
Real numbers (int and float values) are left alone: -2 as a number is data, "-2" as text is not trusted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A value as a CSV cell that no spreadsheet evaluates; None stays empty."""
    if value is None or isinstance(value, int | float):
        return value
    text = str(value)  # what csv.writer would write; checked after conversion, whatever the type
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class CsvWriter:
    """csv.writer's writerow/writerows, with every cell passed through ``cell``."""

    def __init__(self, out: TextIO, lineterminator: str = "\n") -> None:
        self._writer = csv.writer(out, lineterminator=lineterminator)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_chunks(columns: Iterable[str], rows: Iterable[Mapping[str, Any]], rows_per_chunk: int = 1000) -> Iterator[str]:
    """A listing as CSV text in chunks, for a streamed download: the header, then each row's ``columns`` (times in
    ISO 8601 to the second, empty cells for none) through the formula-safe writer; the first chunk is the header
    alone, so a download starts before the first row is read."""
    columns = list(columns)
    buffer = io.StringIO()
    writer = CsvWriter(buffer)
    writer.writerow(columns)
    yield _drained(buffer)
    for index, row in enumerate(rows, 1):
        writer.writerow([_plain(row.get(column)) for column in columns])
        if index % rows_per_chunk == 0:
            yield _drained(buffer)
    if buffer.tell():
        yield _drained(buffer)


def _plain(value: Any) -> Any:
    if value is None:
        return ""
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else value


def _drained(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
