"""csv: appends audit records to a CSV file (optionally one per UTC day), one row per record, header once per file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from string import Formatter
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from campaignkit.core import AuditSink

from .csvfile import CsvFile

if TYPE_CHECKING:
    from campaignkit.core.runtime import Runtime

# The AuditHistory columns in their table order, then the keyed hash that chains each record to the one before and
# the key_id that names its audit key: with both, a copy can be checked against the trail.
COLUMNS = ("audit_id", "user_name", "computer_name", "computer_ip", "server_name", "audit_timestamp", "object_id",
           "object_name", "object_folder", "version_major", "version_minor", "audit_type", "audit_sub_type",
           "details", "class_name", "assembly_name", "record_hash", "key_id")
PLACEHOLDERS = frozenset({"date"})
# A cell starting with one of these runs as a formula when a spreadsheet opens the file.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class CsvAuditConfig(BaseModel):
    """The table ``[plugins.config.csv_audit]``."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="The file records are appended to; a relative path is taken under var_dir. "
                                   "{date} in it (audit/audit-{date}.csv) starts one file per UTC day of the "
                                   "records' audit_timestamp.")
    columns: list[str] = Field(default_factory=lambda: list(COLUMNS), min_length=1,
                               description="The columns and their order; audit_id is required (it identifies "
                                           "repeats). Default: every AuditHistory column, then record_hash and key_id.")
    guard_formulas: bool = Field(default=False, description="Prefix ' to text cells that start with = + - @ so a "
                                                            "spreadsheet shows them instead of running them. It "
                                                            "changes those values (record_hash no longer matches).")

    @field_validator("path")
    @classmethod
    def _placeholders(cls, value: Path) -> Path:
        try:
            parts = list(Formatter().parse(str(value)))
        except ValueError as exc:
            raise ValueError(f"{exc} (write {{{{ and }}}} for literal braces)") from None
        for _, field, spec, conversion in parts:
            if field is None:
                continue
            if field not in PLACEHOLDERS or spec or conversion:
                raise ValueError(f"unknown placeholder {{{field}{'!' + conversion if conversion else ''}"
                                 f"{':' + spec if spec else ''}}} (known: {{date}})")
        return value

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in COLUMNS]
        if unknown:
            raise ValueError(f"unknown column(s) {', '.join(unknown)} (known: {', '.join(COLUMNS)})")
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"column(s) listed twice: {', '.join(repeated)}")
        if "audit_id" not in value:
            raise ValueError("must include audit_id: it tells a repeated delivery from a new record")
        return value


class CsvAuditSink(AuditSink):
    name = "csv"
    # plugins.config.csv belongs to the bundled csv audience source (its encoding and delimiter).
    config_key = "csv_audit"
    Config = CsvAuditConfig
    config: CsvAuditConfig

    def __init__(self, config: CsvAuditConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        self._file = CsvFile(config.columns)
        self._template = str(config.path.expanduser())
        self.per_day = any(field == "date" for _, field, _, _ in Formatter().parse(self._template))

    def path_for(self, record: Mapping[str, Any]) -> Path:
        day = _utc_day(record["audit_timestamp"]) if self.per_day else ""
        path = Path(self._template.format(date=day))
        return path if path.is_absolute() else self.runtime.settings.var_dir / path

    def emit(self, records: Sequence[Mapping[str, Any]]) -> None:
        by_file: dict[Path, list[tuple[int, list[str]]]] = {}
        for record in records:
            by_file.setdefault(self.path_for(record), []).append((int(record["audit_id"]), self.cells(record)))
        # Each file is complete and synced before the next: a failure later in the batch makes the dispatcher
        # send it all again, and the files already written skip what they hold.
        for path, rows in by_file.items():
            self._file.append(path, rows)

    def cells(self, record: Mapping[str, Any]) -> list[str]:
        return [self._cell(record.get(column)) for column in self.config.columns]

    def _cell(self, value: Any) -> str:
        if value is None:
            return ""
        text = value.isoformat() if isinstance(value, datetime) else str(value)
        if self.config.guard_formulas and isinstance(value, str) and text.startswith(FORMULA_STARTS):
            return "'" + text
        return text


def _utc_day(value: Any) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the dispatcher's timestamps are UTC already
    return moment.astimezone(UTC).date().isoformat()
