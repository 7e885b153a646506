"""Files and folders only the service account may read, whatever the umask.

What campaignkit keeps under var/ is live: the outbox's .eml files carry decision links that act for their approver,
the SQLite database (and its -wal and -shm files) holds targets, tokens and the audit trail, var/secrets the keys,
audit files name people and hosts. Under the usual umask 022 they would be created readable by every local user.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents 0700. Folders that already exist are left as they are: one may be
    shared on purpose (a var_dir of /srv), and tightening it is the administrator's call."""
    missing: list[Path] = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # another process made it first, through this same function
            continue
        os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode passes through the umask
    return path


def open_private(path: Path, flags: int = os.O_WRONLY) -> int:
    """os.open(path, flags), creating the file 0600 if it does not exist. A file that exists keeps its mode (an
    administrator may have opened one to a log shipper's group); with os.O_EXCL in flags it raises instead."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        if flags & os.O_EXCL:
            raise
        return os.open(path, flags & ~os.O_CREAT)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # open's mode passes through the umask
    except OSError:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new 0600 file at ``path``, in place of any file a crash left there with another mode."""
    path.unlink(missing_ok=True)
    fd = open_private(path, os.O_WRONLY | os.O_EXCL)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (one call may write fewer)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(directory: Path) -> None:
    """Flush a folder's entries: a file created or renamed in it survives a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
