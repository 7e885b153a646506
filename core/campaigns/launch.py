"""Turns a campaign's audience into runs: streamed in batches, duplicates merged by key, all or nothing."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite

from ..db import is_postgres
from ..db.bulk import BulkInsert
from ..db.schema import runs
from ..definitions.reading import CONTROL, shown
from ..definitions.workflow import CampaignDefinition
from ..errors import AudienceError
from ..interfaces import Target
from ..kinds import LaunchedRun, RunStart
from . import counts

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .entries import LaunchGate

CHUNK = 2000
# What differs from run to run at a launch; the rest is the same for every run (BulkInsert's shared values).
RUN_COLUMNS = ("target_key", "target", "due_at", "context")
Progress = Callable[[int], None]


def audience_targets(runtime: Runtime, definition: CampaignDefinition, base_dir: Path,
                     override: Path | None = None) -> Iterator[Target]:
    spec = _audience_spec(definition, override)
    if spec.get("source") == "csv" and not spec.get("path"):
        raise AudienceError("the campaign has no audience: give audience.path in the definition or --audience")
    source = runtime.registry.audience_source(spec["source"], runtime)
    path = spec.get("path")
    origin = str(Path(path) if Path(path).is_absolute() else base_dir / path) if isinstance(path, str) else None
    targets = _storable(source.targets(spec, base_dir), origin)
    kind = runtime.kind(definition.kind)
    settings = kind.settings(definition.settings)
    return _checked(targets, lambda attributes: kind.target_problem(settings, attributes), origin)


MAX_LISTED = 10
KEY_LENGTH: int = getattr(runs.c.target_key.type, "length", None) or 300  # String(300)


def _storable(targets: Iterator[Target], origin: str | None) -> Iterator[Target]:
    """Refuse, naming its line, a target that SQLite would store and PostgreSQL refuse (a key longer than its
    column, a NUL, a number JSON cannot write), so that both accept and refuse the same audiences; a key with
    control characters is refused too, as it is shown on one line everywhere."""
    empty = True
    for target in targets:
        problem = _key_problem(target.key) or _attribute_problem(target.attributes)
        if problem is not None:
            where = f"{origin}:{target.line}" if origin and target.line is not None else f"target {shown(target.key)}"
            raise AudienceError(f"{where}: {problem}")
        empty = False
        yield target
    if empty and origin:
        raise AudienceError(f"{origin}: the audience is empty: no targets to launch")


def _key_problem(key: str) -> str | None:
    if len(key) > KEY_LENGTH:
        return f"the key is {len(key)} characters long; at most {KEY_LENGTH}"
    control = CONTROL.search(key)
    if control is not None:
        return f"the key {shown(key)} contains control character U+{ord(control.group()):04X}"
    return None


def _attribute_problem(attributes: Mapping[str, Any]) -> str | None:
    for column, value in attributes.items():
        if "\0" in str(column):
            return f"column name {shown(str(column))} contains NUL (U+0000), which PostgreSQL cannot store"
        if isinstance(value, str) and "\0" in value:
            return f"column {shown(str(column))} contains NUL (U+0000), which PostgreSQL cannot store"
        if not _json_safe(value):
            return f"column {shown(str(column))} holds a value JSON cannot store (a NUL, Infinity or NaN)"
    return None


def _json_safe(value: Any) -> bool:
    """Plugins' sources may give numbers and nested values: those too must be JSON both databases accept."""
    if isinstance(value, str):
        return "\0" not in value
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all("\0" not in str(key) and _json_safe(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return all(_json_safe(item) for item in value)
    return True


def _checked(targets: Iterator[Target], problem: Callable[[Mapping[str, Any]], str | None],
             origin: str | None) -> Iterator[Target]:
    """Pass targets through, then refuse the whole audience if any row failed its kind's check, naming the rows
    (the launch transaction rolls back what was written meanwhile)."""
    bad: list[str] = []
    count = 0
    for target in targets:
        found = problem(target.attributes)
        if found is not None:
            count += 1
            if len(bad) < MAX_LISTED:
                where = f"{origin or 'line'}:{target.line}" if target.line is not None else repr(target.key)
                bad.append(f"{where}: {found}")
        yield target
    if count:
        more = f" (and {count - len(bad)} more)" if count > len(bad) else ""
        raise AudienceError(f"{count} audience row(s) refused: {'; '.join(bad)}{more}")


def _audience_spec(definition: CampaignDefinition, override: Path | None) -> dict[str, Any]:
    spec: dict[str, Any] = definition.audience.model_dump() if definition.audience else {"source": "csv"}
    if override is not None:
        spec = {**spec, "source": "csv", "path": str(override.resolve())}
    return spec


@dataclass(frozen=True)
class AudienceFile:
    """The file a launch imports its audience from (audited as Client Job / File Import)."""

    source: str
    path: Path


def audience_file(definition: CampaignDefinition, base_dir: Path, override: Path | None = None) -> AudienceFile | None:
    """The file this launch's audience is read from, or None when the source reads no file.

    ``audience.path`` is how a source names its file (csv does; a plugin's xlsx or JSON-lines source would too), so
    any source given a path imports a file, whatever its name. A source without one (a directory, an HTTP API, a
    database query) imports no file: such a launch gets no File Import record, since its Workflow Started record
    already carries the target count and its source is part of the definition audited as Created / Edited.
    """
    spec = _audience_spec(definition, override)
    raw = spec.get("path")
    if not isinstance(raw, str) or not raw:
        return None
    path = Path(raw) if Path(raw).is_absolute() else base_dir / raw
    return AudienceFile(str(spec.get("source", "csv")), path.resolve())


def estimated_rows(file: AudienceFile | None) -> int | None:
    """Data rows in a CSV audience (lines after the header), for a progress bar's total; None when unknown.

    A quoted field spanning lines makes it an overestimate, which only ends the bar early.
    """
    if file is None or file.source != "csv" or not file.path.is_file():
        return None
    lines, last = 0, b"\n"
    with file.path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"  # a last line without its newline
    return max(lines - 1, 0)


class CountedTargets(Iterator[Target]):
    """Passes targets through, counting them: rows read, before duplicate keys merge into one run."""

    def __init__(self, targets: Iterator[Target]) -> None:
        self._targets = targets
        self.rows = 0

    def __next__(self) -> Target:
        target = next(self._targets)
        self.rows += 1
        return target


def insert_runs(
    conn: Connection,
    targets: Iterator[Target],
    *,
    campaign_id: str,
    launch_id: int,
    version_id: int,
    due_at: datetime,
    now: datetime,
    progress: Progress | None = None,
    start: Callable[[Target], RunStart] | None = None,
    launched: Callable[[list[LaunchedRun]], None] | None = None,
    gate: LaunchGate | None = None,
) -> int:
    """Insert one pending run per distinct target key; returns how many runs exist for the launch.

    A duplicate key merges its attributes into the first (later values win). Any AudienceError raised by
    the source propagates, and the caller's transaction rolls back every row written so far. ``start`` (the kind's
    launch planner) gives each new run its due time and first context; ``launched`` gets each written batch;
    ``gate`` (the entry rules, entries.py) keeps out the targets they skip, and counts them.
    """
    # A chunk's keys are distinct (a duplicate is merged into its first), so its rows can share a statement.
    # On PostgreSQL the upsert returns the runs' ids for ``launched``: a query for them by key, planned from the
    # statistics of a table that was empty when they were last taken, scanned it once per chunk.
    returning = launched is not None and is_postgres(conn)
    upsert = _upsert(conn).returning(runs.c.target_key, runs.c.id) if returning else _upsert(conn)
    writer = BulkInsert(conn, runs, RUN_COLUMNS, statement=upsert, shared={
        "campaign_id": campaign_id, "launch_id": launch_id, "version_id": version_id, "status": "pending",
        "current_node": None, "lease_token": 0, "attempt": 0, "created_at": now, "updated_at": now},
        rows_per_statement=CHUNK)
    launched_before = _launched(conn, launch_id)
    seen_rows = 0
    chunk: dict[str, dict[str, Any]] = {}
    for target in targets:
        seen_rows += 1
        if target.key in chunk:
            chunk[target.key]["target"] = {**chunk[target.key]["target"], **target.attributes}
        else:
            chunk[target.key] = {"target": dict(target.attributes), "due_at": due_at, "context": {}}
            if start is not None:
                planned = start(target)
                chunk[target.key].update(due_at=planned.due_at, context=dict(planned.context))
        if len(chunk) >= CHUNK:
            _write(conn, writer, _admitted(conn, chunk, gate, launch_id), launch_id, launched)
            chunk.clear()
            if progress:
                progress(seen_rows)
    if chunk:
        _write(conn, writer, _admitted(conn, chunk, gate, launch_id), launch_id, launched)
    if progress:
        progress(seen_rows)
    count = _launched(conn, launch_id)
    # Every target skipped by the entry rules, or a journey opened for entries only: a launch of no run.
    if count == 0 and not (gate is not None and (gate.skipped or (gate.events_only and not seen_rows))):
        raise AudienceError("the audience is empty: no targets to launch")
    counts.add_launched(conn, campaign_id, launch_id, count - launched_before)
    return count


def _admitted(conn: Connection, chunk: dict[str, dict[str, Any]], gate: LaunchGate | None,
              launch_id: int) -> dict[str, dict[str, Any]]:
    if gate is None or not gate.active:
        return chunk
    skipped = gate.skip(conn, list(chunk), launch_id)
    return {key: row for key, row in chunk.items() if key not in skipped} if skipped else chunk


def _write(conn: Connection, writer: BulkInsert, chunk: dict[str, dict[str, Any]], launch_id: int,
           launched: Callable[[list[LaunchedRun]], None] | None) -> None:
    if not chunk:
        return
    values = ((key, row["target"], row["due_at"], row["context"]) for key, row in chunk.items())
    if launched is None:
        writer.execute(values)
        return
    if is_postgres(conn):
        ids = dict(writer.fetch(values))
    else:
        writer.execute(values)
        ids = dict(conn.execute(select(runs.c.target_key, runs.c.id).where(
            runs.c.launch_id == launch_id, runs.c.target_key.in_(list(chunk)))).all())
    launched([LaunchedRun(ids[key], key, row["target"], row["due_at"], row["context"]) for key, row in chunk.items()])


def _launched(conn: Connection, launch_id: int) -> int:
    return int(conn.execute(runs.select().with_only_columns(func.count()).where(runs.c.launch_id == launch_id))
               .scalar_one())


def _upsert(conn: Connection) -> Any:
    if is_postgres(conn):
        pg = postgresql.insert(runs)
        merged: Any = literal_column("(runs.target::jsonb || excluded.target::jsonb)::json")
        return pg.on_conflict_do_update(index_elements=[runs.c.launch_id, runs.c.target_key], set_={"target": merged})
    lite = sqlite.insert(runs)
    return lite.on_conflict_do_update(index_elements=[runs.c.launch_id, runs.c.target_key],
                                      set_={"target": func.json_patch(runs.c.target, lite.excluded.target)})
