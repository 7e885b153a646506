"""jsonl: appends one JSON object per audit record to a file, rotated by size like logging's RotatingFileHandler."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from campaignkit.core import AuditSink
from campaignkit.core.files import fsync_dir, private_dir, write_all

from .base import SinkConfig, record_json

FILE_MODE = 0o600  # audit trails name people and hosts: readable by the service account only


class JsonlConfig(SinkConfig):
    path: Path = Field(description="The file records are appended to; a relative path is taken under var_dir.")
    max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=0,
        description="Rotate before a record would take the file past this size; 0 never rotates.",
    )
    backups: int = Field(
        default=5, ge=1, description="Rotated files kept as <path>.1 (newest) … <path>.N; older ones are deleted."
    )


class JsonlSink(AuditSink):
    name = "jsonl"
    Config = JsonlConfig
    config: JsonlConfig

    @property
    def path(self) -> Path:
        path = self.config.path.expanduser()
        return path if path.is_absolute() else self.runtime.settings.var_dir / path

    def emit(self, records: Sequence[Mapping[str, Any]]) -> None:
        lines = [(record_json(record) + "\n").encode() for record in records]
        path = self.path
        private_dir(path.parent)  # e.g. var/audit/, created 0700: the records name people and hosts
        fd = self._open(path)
        try:
            size = os.fstat(fd).st_size
            if size and not _ends_with_newline(fd, size):
                # A crash mid-write left half a line: end it, so the records that follow stay parseable.
                os.write(fd, b"\n")
                size += 1
            pending: list[bytes] = []
            for line in lines:
                if self._must_rotate(size, len(line)):
                    write_all(fd, b"".join(pending))
                    os.fsync(fd)
                    os.close(fd)
                    fd = -1
                    self._rotate(path)
                    fd = self._open(path)
                    pending, size = [], 0
                pending.append(line)
                size += len(line)
            write_all(fd, b"".join(pending))
            os.fsync(fd)  # the dispatcher moves its cursor once we return: the batch must be on disk
        finally:
            if fd >= 0:
                os.close(fd)

    def _must_rotate(self, size: int, line_length: int) -> bool:
        # A record larger than max_bytes still goes in, alone in a fresh file: records are never split or dropped.
        return self.config.max_bytes > 0 and size > 0 and size + line_length > self.config.max_bytes

    def _open(self, path: Path) -> int:
        existed = path.exists()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        if not existed:
            fsync_dir(path.parent)  # the new file's directory entry survives a crash too
        return fd

    def _rotate(self, path: Path) -> None:
        """file.N-1 → file.N … file → file.1, replacing (so deleting) the oldest, as RotatingFileHandler does."""
        for index in range(self.config.backups - 1, 0, -1):
            source = _backup(path, index)
            if source.exists():
                os.replace(source, _backup(path, index + 1))
        os.replace(path, _backup(path, 1))
        fsync_dir(path.parent)


def _backup(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")


def _ends_with_newline(fd: int, size: int) -> bool:
    return os.pread(fd, 1, size - 1) == b"\n"

