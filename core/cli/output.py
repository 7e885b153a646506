"""Listings as a table, CSV or JSON: one renderer for every command that prints rows.

Rich is imported only when something is printed, so that `campaignkit --help` does not pay for it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SHORT_ID = 8  # git-style: enough to tell ids apart, and every command naming a campaign accepts a unique prefix
# Free text that a table cuts with an ellipsis when the terminal is too narrow (csv and json keep all of it).
TRUNCATED = frozenset({"details", "detail", "error", "last_error"})
# Long values that a very narrow table breaks inside a word before it does so to any other column.
WRAPPED = frozenset({"name", "object_name", "target_key", "value", "hooks", "registers",
                     "implementations (call order)"})
MIN_WIDTH = 10
GAP = 2  # between two columns


def console(*, stderr: bool = False) -> Console:
    """A console for the current stream and environment (made per use: CliRunner swaps streams and COLUMNS)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def error_line(label: str, message: str) -> None:
    """One line on stderr; the message is printed as text, never read as Rich markup."""
    from rich.text import Text

    console(stderr=True).print(Text.assemble((f"{label}: ", "bold red"), message), soft_wrap=True)


def info(message: str) -> None:
    from rich.text import Text

    console().print(Text(message), soft_wrap=True)


def progress(*columns: ProgressColumn) -> Progress:
    """A transient progress display on a terminal; nothing at all when the output is piped."""
    from rich.progress import Progress

    out = console()
    return Progress(*columns, console=out, transient=True, disable=not out.is_terminal)


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
        from ..csv_export import CsvWriter

        writer = CsvWriter(sys.stdout)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else plain(row.get(c)) for c in columns])
    else:
        render_table(rows, columns, title)


def render_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=_json_default, ensure_ascii=False, indent=2) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# --- the table form ---------------------------------------------------------------------------------------------


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    """Short ids, compact times, and the terminal's width: free text is cut, the rest wraps, ids never do.

    Piped without COLUMNS there is no width to fit, so nothing is cut or wrapped.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    headers = [c.replace("_", " ") for c in columns]
    ids = [i for i in range(len(columns)) if _shorten_ids(cells, i)]
    out = console()
    terminal = out.is_terminal or bool(os.environ.get("COLUMNS"))
    fitted = fit_table(cells, headers, columns, ids, out.width if terminal else None)
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                  padding=(0, fitted.gap - 1))
    for index, (header, width) in enumerate(zip(headers, fitted.widths, strict=True)):
        cut = index in fitted.cut
        table.add_column(header, width=width, no_wrap=index in ids or cut, overflow="ellipsis" if cut else "fold")
    for values in cells:
        table.add_row(*[Text(" ".join(v.split()) if columns[i] in TRUNCATED else v) for i, v in enumerate(values)])
    # Wide enough for the table as fitted: what could not be narrowed overflows rather than being cut.
    out.width = max(out.width if fitted.limited else 0, fitted.width)
    out.print(table)


@dataclass(frozen=True)
class Fitted:
    widths: list[int]
    gap: int  # spaces between two columns
    cut: frozenset[int]  # columns whose cells are cut with an ellipsis
    limited: bool

    @property
    def width(self) -> int:
        return sum(self.widths) + self.gap * (len(self.widths) - 1)


def fit_table(cells: Sequence[Sequence[str]], headers: Sequence[str], columns: Sequence[str], ids: Collection[int],
              limit: int | None) -> Fitted:
    """Column widths within ``limit``. Free text narrows first (cut), then every column but the ids down to its
    longest word (wrapped at spaces), then the gap between columns to one space; only a very narrow terminal has
    long values broken inside a word."""
    from rich.cells import cell_len

    def longest(values: Sequence[str], split: bool) -> int:
        return max((cell_len(part) for v in values for part in (v.split() if split else v.splitlines())), default=0)

    columns_cells = [[row[i] for row in cells] + [headers[i]] for i in range(len(columns))]
    natural = [longest(values, split=False) for values in columns_cells]
    if limit is None:
        return Fitted(natural, GAP, frozenset(), limited=False)
    words = [longest(values, split=True) for values in columns_cells]
    free = [i for i, c in enumerate(columns) if c in TRUNCATED]
    others = [i for i in range(len(columns)) if i not in ids and columns[i] not in TRUNCATED]
    least = [min(n, MIN_WIDTH) for n in natural]
    for gap in (GAP, 1):
        widths = list(natural)
        excess = sum(widths) + gap * (len(columns) - 1) - limit
        excess = _narrow(widths, free, least, excess)
        excess = _narrow(widths, others, words, excess)
        if excess <= 0:
            break
    excess = _narrow(widths, [i for i in others if columns[i] in WRAPPED], least, excess)
    _narrow(widths, others, [min(n, 4) for n in natural], excess)
    return Fitted(widths, gap, frozenset(i for i in free if widths[i] < natural[i]), limited=True)


def _narrow(widths: list[int], group: Sequence[int], floor: Sequence[int], excess: int) -> int:
    """Take ``excess`` columns of width from ``group``, the widest first, none below its floor; what is left over."""
    while excess > 0:
        candidates = [i for i in group if widths[i] > floor[i]]
        if not candidates:
            break
        widths[max(candidates, key=lambda i: widths[i])] -= 1
        excess -= 1
    return excess


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _compact_time(value)
    return str(plain(value))


def _compact_time(value: datetime) -> str:
    if value.utcoffset() == timedelta(0):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")  # RFC 3339, read back by --since; and it wraps at the space
    return value.isoformat(timespec="seconds")


def _shorten_ids(cells: list[list[str]], column: int) -> bool:
    """Replace a column of UUIDs by their shortest prefixes (at least SHORT_ID) that tell them apart."""
    values = [row[column] for row in cells if row[column]]
    if not values or not all(UUID.fullmatch(v) for v in values):
        return False
    distinct = sorted(set(values))
    length = {v: SHORT_ID for v in distinct}
    for left, right in itertools.pairwise(distinct):
        shared = next((i for i, (a, b) in enumerate(zip(left, right, strict=True)) if a != b), len(left))
        length[left] = max(length[left], shared + 1)
        length[right] = max(length[right], shared + 1)
    for row in cells:
        if row[column]:
            row[column] = row[column][:length[row[column]]]
    return True
