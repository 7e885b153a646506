"""database: the audit_history table itself; always on, listed so admins see it, nothing to deliver."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from campaignkit.core import AuditSink


class DatabaseSink(AuditSink):
    name = "database"

    def emit(self, records: Sequence[Mapping[str, Any]]) -> None:
        # The records are already in the table: they were written in the transaction they describe.
        return None
