"""Appends rows to one CSV file: a header once, whole rows only, on disk before returning, no repeats.

A crash in the middle of a write can leave half a row at the end of the file. The dispatcher had not moved its
cursor past that batch, so it sends it again: the half row is cut off, and rows already in the file (their
audit_id is not above the file's last one) are not written a second time.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FILE_MODE = 0o600  # audit trails name people and hosts: readable by the service account only
CHUNK = 1 << 20
# Quotes toggle "inside a quoted field"; a newline outside one ends a row (csv quotes any field holding a newline).
_QUOTE_OR_NEWLINE = re.compile(rb'["\n]')


class HeaderMismatch(Exception):
    """The file was started with other columns: appending would put values under the wrong names."""


@dataclass(frozen=True)
class Tail:
    """What the file holds up to its last complete row, and the file state (device, inode, size) it was read at."""

    end: int
    header: list[str] | None
    last_id: int
    seen_at: tuple[int, int, int]


def encode_rows(rows: Sequence[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180, what spreadsheets expect
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


class CsvFile:
    """One appender for every file of a sink; remembers each file's tail so a file is scanned once per process."""

    def __init__(self, columns: Sequence[str], id_column: str = "audit_id") -> None:
        self.columns = list(columns)
        self._id_index = self.columns.index(id_column)
        self._tails: dict[Path, Tail] = {}

    def append(self, path: Path, rows: Sequence[tuple[int, Sequence[str]]]) -> int:
        """Append ``(audit_id, cells)`` rows in audit_id order; returns how many were new to the file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            if not existed:
                _fsync_dir(path.parent)  # the new file's directory entry survives a crash too
            size = os.fstat(fd).st_size
            tail = self._tail(fd, path)
            if tail.header is not None and tail.header != self.columns:
                raise HeaderMismatch(f"{path}: its header ({', '.join(tail.header)}) is not the configured columns "
                                     f"({', '.join(self.columns)}); move the file aside or configure those columns")
            if tail.end < size:
                log.warning("%s: cutting off %d byte(s) of an incomplete last row (an interrupted write); "
                            "its records are being delivered again", path, size - tail.end)
                os.ftruncate(fd, tail.end)
            fresh = [cells for audit_id, cells in rows if audit_id > tail.last_id]
            data = (encode_rows([self.columns]) if tail.header is None else b"") + encode_rows(fresh)
            if data:
                _write_all(fd, data)
                os.fsync(fd)  # the dispatcher moves its cursor once emit returns: the rows must be on disk
            stat = os.fstat(fd)
            last_id = max([tail.last_id, *(audit_id for audit_id, _ in rows)])
            self._tails[path] = Tail(stat.st_size, self.columns, last_id, (stat.st_dev, stat.st_ino, stat.st_size))
            return len(fresh)
        finally:
            os.close(fd)

    def _tail(self, fd: int, path: Path) -> Tail:
        stat = os.fstat(fd)
        known = self._tails.get(path)
        if known is not None and known.seen_at == (stat.st_dev, stat.st_ino, stat.st_size):
            return known
        # First use in this process, or the file changed under us (rotated, edited): read it again.
        header_end, row_start, end = _row_bounds(fd, stat.st_size)
        header = _parse(os.pread(fd, header_end, 0)) if header_end else None
        last_id = 0
        if header is not None and end > header_end and header == self.columns:
            cells = _parse(os.pread(fd, end - row_start, row_start))
            value = cells[self._id_index] if len(cells) > self._id_index else ""
            last_id = int(value) if value.isdigit() else 0
        return Tail(end, header, last_id, (stat.st_dev, stat.st_ino, stat.st_size))


def _row_bounds(fd: int, size: int) -> tuple[int, int, int]:
    """(end of the header row, start of the last complete row, end of the last complete row); 0 when absent."""
    header_end = row_start = end = 0
    inside_quotes = False
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(CHUNK, size - offset), offset)
        if not chunk:
            break
        for match in _QUOTE_OR_NEWLINE.finditer(chunk):
            if match.group() == b'"':
                inside_quotes = not inside_quotes
            elif not inside_quotes:
                row_start, end = end, offset + match.end()
                header_end = header_end or end
        offset += len(chunk)
    return header_end, row_start, end


def _parse(data: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline="")), [])


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
