"""Shared pieces of the bundled audit sinks: the strict config base and the JSON form of a record."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict


class SinkConfig(BaseModel):
    """A misspelt key is an error, not a silently ignored setting."""

    model_config = ConfigDict(extra="forbid")


def record_json(record: Mapping[str, Any]) -> str:
    """One record as compact JSON on one line (no raw newlines: json escapes them inside strings)."""
    return json.dumps(dict(record), ensure_ascii=False, separators=(",", ":"), default=str)
