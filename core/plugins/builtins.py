"""Default plugin: the log and null channels and the CSV audience source."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from ..errors import AudienceError
from ..hookspecs import hookimpl
from ..interfaces import AudienceSource, Channel, Delivery, Message, Target
from ..kinds import CampaignKind, Journey

log = logging.getLogger("campaignkit.channel.log")


class LogChannel(Channel):
    """log: writes one line per message to the log (recipient and subject, never the body)."""

    name = "log"

    def send(self, message: Message) -> Delivery:
        log.info("message to %s: %s [%s]", message.to, message.subject, message.idempotency_key)
        return Delivery(message_id=message.idempotency_key)


class NullChannel(Channel):
    """null: accepts every message and does nothing (benchmarks, dry runs)."""

    name = "null"
    blocking = False

    def send(self, message: Message) -> Delivery:
        return Delivery()


class CsvAudienceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    encoding: str = "utf-8-sig"
    delimiter: str = Field(default=",", min_length=1, max_length=1)


class CsvAudience(AudienceSource):
    """csv: one target per row of a CSV file with a header; ``audience.path`` and ``audience.key``."""

    name = "csv"
    Config = CsvAudienceConfig
    config: CsvAudienceConfig

    def targets(self, spec: Mapping[str, Any], base_dir: Path) -> Iterator[Target]:
        raw_path = spec.get("path")
        if not raw_path:
            raise AudienceError("audience.path: the csv source needs a file path")
        path = Path(raw_path) if Path(raw_path).is_absolute() else base_dir / raw_path
        key = spec.get("key", "key")
        key_columns = [key] if isinstance(key, str) else list(key)
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise AudienceError(f"{path}: cannot open: {exc.strerror or exc}") from None
        with handle:
            yield from _read_csv(_decoded_lines(handle, self.config.encoding, path), path, key_columns,
                                 self.config.delimiter)


def _decoded_lines(handle: Any, encoding: str, path: Path) -> Iterator[str]:
    """Decode line by line, so that a byte the encoding cannot read is reported on its own line."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode(encoding if number == 1 else encoding.removesuffix("-sig"))
        except UnicodeDecodeError as exc:
            raise AudienceError(f"{path}:{number}: not valid {encoding} text: {exc.reason}") from None


def _read_csv(lines: Iterator[str], path: Path, key_columns: list[str], delimiter: str) -> Iterator[Target]:
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise AudienceError(f"{path}:1: the file is empty; expected a header row")
        header = [h.strip() for h in header]
        for key_column in key_columns:
            if key_column not in header:
                raise AudienceError(f"{path}:1: no {key_column!r} column in the header ({', '.join(header)})")
        if len(set(header)) != len(header) or "" in header:
            raise AudienceError(f"{path}:1: header has empty or repeated column names")
        key_indexes = [header.index(column) for column in key_columns]
        start = reader.line_num + 1  # a quoted field may span lines: a row is named by the line it starts on
        for row in reader:
            line, start = start, reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise AudienceError(f"{path}:{line}: expected {len(header)} fields, found {len(row)}")
            parts = [row[i].strip() for i in key_indexes]
            for column, part in zip(key_columns, parts, strict=True):
                if not part:
                    raise AudienceError(f"{path}:{line}: empty {column!r}")
            key = "|".join(parts)
            yield Target(key=key, attributes=dict(zip(header, row, strict=True)), line=line)
    except csv.Error as exc:
        raise AudienceError(f"{path}:{reader.line_num}: {exc}") from None


def after(moment: datetime, duration: str) -> datetime:
    """Template filter: ``{{ now | after('P3D') }}``, a time plus an ISO 8601 duration."""
    return moment + TypeAdapter(timedelta).validate_python(duration)


def segment(value: Any) -> str:
    """Template filter: ``{{ params.user | segment }}``, a value as exactly one URL path segment. Unlike urlencode it
    encodes / too, so a user named victim/gone cannot turn /access/USER/APP into another path."""
    return quote(str(value), safe="")


@hookimpl(trylast=True)
def prepare_jinja_environment(env: jinja2.Environment, purpose: str) -> None:
    # trylast runs after every plugin: never replace a plugin's own
    env.filters.setdefault("after", after)
    env.filters.setdefault("segment", segment)


@hookimpl(trylast=True)
def register_channels() -> list[type[Channel]]:
    return [LogChannel, NullChannel]


@hookimpl(trylast=True)
def register_audience_sources() -> list[type[AudienceSource]]:
    return [CsvAudience]


@hookimpl(trylast=True)
def register_campaign_kinds() -> list[type[CampaignKind]]:
    return [Journey]
