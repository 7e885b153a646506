"""stdout: one JSON line per audit record on standard output, for containers whose logs are collected."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from campaignkit.core import AuditSink

from .base import SinkConfig, record_json


class StdoutConfig(SinkConfig):
    pass


class StdoutSink(AuditSink):
    name = "stdout"
    Config = StdoutConfig

    def emit(self, records: Sequence[Mapping[str, Any]]) -> None:
        # Looked up per call, not bound at import: tests and embedders may swap sys.stdout.
        out = sys.stdout
        out.write("".join(record_json(record) + "\n" for record in records))
        out.flush()  # a broken pipe surfaces here, so the dispatcher keeps its cursor
