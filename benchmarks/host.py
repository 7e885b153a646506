"""What the benchmarks print about the host they ran on, one function for all of them."""

from __future__ import annotations

import importlib
import os
import platform
import sqlite3
from pathlib import Path


def machine(*packages: str) -> str:
    """CPU model, cores, memory, Python and SQLite, then the version of each of ``packages`` (e.g. "uvicorn")."""
    info = Path("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                  if line.startswith("model name")), "") if info.exists() else ""
    meminfo = Path("/proc/meminfo")
    memory = next((int(line.split()[1]) for line in meminfo.read_text().splitlines()
                   if line.startswith("MemTotal:")), 0) if meminfo.exists() else 0
    versions = "".join(f", {name} {importlib.import_module(name).__version__}" for name in packages)
    return (f"{model or platform.processor() or 'unknown'}, {os.cpu_count()} cores, {memory / 2**20:.0f} GiB RAM; "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}{versions}")
