"""CPU seconds from /proc: a process's own (user + system), and a PostgreSQL server's on this host.

A server's CPU is its postmaster's own and that of its reaped children (cutime, cstime: backends that exited, such
as the workers' connections once they close) plus that of every child still running (checkpointer, WAL writer,
autovacuum, open backends). Read before and after a run, the difference is what the server spent on it, provided
nothing else uses that server meanwhile.
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    # The command name may hold spaces and parentheses: the fields start after its last ")".
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads) so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def postmaster_of(backend_pid: int) -> int | None:
    """The postmaster of a backend (``SELECT pg_backend_pid()``) when it runs on this host, else None."""
    try:
        if "postgres" not in Path(f"/proc/{backend_pid}/cmdline").read_bytes().decode(errors="replace"):
            return None  # a pid of another namespace or host that happens to exist here
        return int(_stat(backend_pid)[1])
    except (OSError, IndexError, ValueError):
        return None


def server_seconds(postmaster: int) -> float:
    """CPU seconds the server of ``postmaster`` has spent so far: itself, its exited children and its live ones."""
    fields = _stat(postmaster)
    total = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            child = _stat(int(entry.name))
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(child[1]) == postmaster:
            total += int(child[11]) + int(child[12])
    return total / TICKS
