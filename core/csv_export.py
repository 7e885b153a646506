"""The one CSV writer: every CSV campaignkit writes (listings, history, audit exports) goes through it.

Whoever opens the file in Excel, LibreOffice or Google Sheets gets any cell starting with =, +, -, @, a tab or a
carriage return read as a formula, and such cells come from outside: a name in an audience CSV, a target key, audit
details, an event's payload. A formula can fetch URLs carrying the sheet's data or, with DDE, run commands. As OWASP
recommends ("CSV Injection"), such a cell is written with a single quote in front, which spreadsheets show as text.
Real numbers (int and float values) are left alone: -2 as a number is data, "-2" as text is not trusted.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
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
