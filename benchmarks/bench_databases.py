"""The databases a benchmark run makes and throws away: SQLite files in its folder, or fresh databases in the
PostgreSQL server a URL names (created per run, dropped after, so the server's other databases are left alone)."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from campaignkit.core.db import normalise_url


class Databases:
    def __init__(self, url: str | None, folder: Path) -> None:
        self.folder = folder
        self.server = make_url(normalise_url(url)) if url else None
        self.prefix = f"ck_bench_{secrets.token_hex(4)}"
        self.made: list[str] = []
        self._admin: Engine | None = None

    @property
    def postgres(self) -> bool:
        return self.server is not None and self.server.get_backend_name() == "postgresql"

    def url(self, name: str) -> str:
        if self.server is None:
            return f"sqlite:///{self.folder / f'{name}.db'}"
        return self.server.set(database=f"{self.prefix}_{name}").render_as_string(hide_password=False)

    def fresh(self, name: str, template: str | None = None) -> str:
        """A new, empty database (or a copy of ``template``'s, which nothing may be connected to); its URL."""
        if self.server is None:
            if template is not None:
                with sqlite3.connect(self.folder / f"{template}.db") as source, \
                        sqlite3.connect(self.folder / f"{name}.db") as copy:
                    source.backup(copy)  # consistent whatever the WAL holds
            return self.url(name)
        if not self.postgres:
            raise SystemExit("--database: SQLite (the default) or a postgresql:// URL")
        clause = f" TEMPLATE {self.prefix}_{template}" if template else ""
        with self.admin().connect() as conn:
            conn.execute(text(f"CREATE DATABASE {self.prefix}_{name}{clause}"))
        self.made.append(name)
        return self.url(name)

    def admin(self) -> Engine:
        """The URL's own database, in autocommit, for CREATE and DROP DATABASE, SHOW and CHECKPOINT."""
        if self._admin is None:
            assert self.server is not None
            self._admin = create_engine(self.server, isolation_level="AUTOCOMMIT")
        return self._admin

    def drop_all(self) -> None:
        if self.server is None:
            return  # the folder goes with the run
        with self.admin().connect() as conn:
            for name in reversed(self.made):
                conn.execute(text(f"DROP DATABASE IF EXISTS {self.prefix}_{name} WITH (FORCE)"))
        self.admin().dispose()
