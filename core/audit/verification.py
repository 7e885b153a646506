"""Verifying the audit chain, for `campaignkit audit verify`, the console's audit log and the API.

``verify_trail`` walks the whole chain (the one function behind `audit verify` and the console's "Verify now"), and
``record_verification`` keeps its result as a Security / Audit Verified record. ``chain_state``, which every audit
page shows, never re-hashes the whole chain: it takes the last recorded verification, re-hashes only the records
written since (at most TAIL_LIMIT of them, else it says how many wait for the next full verification), and checks
the last signed checkpoint (its record, or the checkpoint file's line where this host has the file) against the
record it saw, which costs one row.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from ..db import reading, writing
from ..db.schema import audit_history
from ..errors import CampaignkitError
from .catalog import AuditSubType, AuditType
from .checkpoints import Checkpoint, CheckpointFile, checkpoint_path, parse, read_checkpoints
from .records import GENESIS_HASH, Actor, ChainBreak, ChainReport, chain_head, record, record_problem, verify_chain

if TYPE_CHECKING:
    from ..runtime import Runtime

# Records re-hashed on a page view past the last full verification: ~10 µs each on SQLite, so at most ~10 ms.
TAIL_LIMIT = 1000


@dataclass(frozen=True)
class Verification:
    """A walk of the whole chain, held to a checkpoint when a checkpoint file was given."""

    report: ChainReport
    checkpoint_file: Path | None = None
    rejected: tuple[str, ...] = ()  # lines of the checkpoint file not trusted ("line N: why")

    @property
    def broken(self) -> ChainBreak | None:
        return self.report.broken

    def summary(self) -> str:
        """One line: what `audit verify` prints, and what the console and the record say."""
        report, broken = self.report, self.report.broken
        if broken is not None:
            # Every record before the break verified, unless the checkpoint caught a re-hash further back.
            intact = f" ({report.checked} record(s) before it are intact)" if broken.audit_id == report.checked + 1 \
                else ""
            return f"audit chain broken at record {broken.audit_id}: {broken.reason}{intact}"
        notes = []
        if report.legacy:
            notes.append(f"{report.legacy} of them unkeyed, written before the chain was keyed")
        if report.checkpoint is not None:
            notes.append(f"matches the checkpoint of {report.checkpoint.time} at record {report.checkpoint.audit_id}")
        return f"audit chain intact: {report.checked} record(s)" + "".join(f"; {note}" for note in notes)

    def details(self) -> str:
        """The Audit Verified record's details: JSON that chain_state reads back."""
        report, broken, checkpoint = self.report, self.report.broken, self.report.checkpoint
        return json.dumps({
            "intact": broken is None, "checked": report.checked, "record_hash": report.last_hash,
            "legacy": report.legacy,
            "broken": {"audit_id": broken.audit_id, "reason": broken.reason} if broken else None,
            "checkpoint": {"audit_id": checkpoint.audit_id, "time": checkpoint.time} if checkpoint else None,
            "checkpoint_file": str(self.checkpoint_file) if self.checkpoint_file else None,
            "rejected": len(self.rejected), "summary": self.summary(),
        }, separators=(",", ":"), ensure_ascii=False)


def verify_trail(runtime: Runtime, checkpoints: CheckpointFile | None = None,
                 checkpoint_file: Path | None = None) -> Verification:
    """Walk the whole chain, held to the latest valid checkpoint of ``checkpoints`` (read from ``checkpoint_file``)."""
    with reading(runtime.engine) as conn:
        report = verify_chain(conn, checkpoint=checkpoints.latest if checkpoints else None)
    return Verification(report, checkpoint_file, tuple(checkpoints.rejected) if checkpoints else ())


def record_verification(runtime: Runtime, actor: Actor, verification: Verification) -> int:
    """Keep the result as a Security / Audit Verified record (as ``actor``); chain_state starts from it."""
    with writing(runtime.engine) as conn:
        return record(conn, actor=actor, audit_type=AuditType.SECURITY, sub_type=AuditSubType.AUDIT_VERIFIED,
                      at=runtime.clock.now(), details=verification.details(), code=verify_trail)


def verify_and_record(runtime: Runtime, actor: Actor) -> Verification:
    """The console's "Verify now": the whole chain, held to the configured checkpoint file where this host has it."""
    path = checkpoint_path(runtime.settings)
    try:
        checkpoints = read_checkpoints(path, runtime.audit_keys) if path.is_file() else None
    except CampaignkitError:  # unreadable here: verified without it, as on a host that does not have the file
        checkpoints = None
    verification = verify_trail(runtime, checkpoints, path if checkpoints else None)
    record_verification(runtime, actor, verification)
    return verification


@dataclass(frozen=True)
class LastVerification:
    record: int  # the Audit Verified record
    at: datetime
    by: str
    intact: bool
    checked: int  # records 1..checked verified (up to the break, if broken)
    record_hash: str
    summary: str
    checkpoint: dict[str, Any] | None  # {"audit_id", "time"} of the checkpoint it was held to


@dataclass(frozen=True)
class LastCheckpoint:
    audit_id: int  # the chain head it signed
    time: str
    record_hash: str
    record: int | None  # its Security / Audit Checkpoint record, or
    file: str | None  # the checkpoint file it was read from (outside the database)


@dataclass(frozen=True)
class ChainState:
    """What an audit page shows of the chain, from the last full verification and the records since."""

    status: str  # "intact", "broken", or "unchecked" (too many records since the last full verification)
    head: int  # the chain head's audit id
    verified_through: int | None  # records 1..this verified: in full at `verification`, the rest now (None: broken)
    broken: ChainBreak | None
    verification: LastVerification | None
    checkpoint: LastCheckpoint | None

    @property
    def unchecked(self) -> int:
        return 0 if self.verified_through is None else self.head - self.verified_through

    def summary(self) -> str:
        last = self.verification
        if self.broken is not None:
            return f"broken at record {self.broken.audit_id}: {self.broken.reason}"
        if self.status == "unchecked":
            since = (f"the last full verification ({_when(last.at)}, by {last.by}) checked {last.checked} record(s)"
                     if last else "the chain has never been verified in full")
            return f"not verified: {self.unchecked} record(s) not checked yet; {since}"
        if last is None:
            return f"intact: all {self.head} record(s) checked now"
        return (f"intact: {self.head} record(s); records 1 to {last.checked} verified in full at {_when(last.at)} by "
                f"{last.by}, the {self.head - last.checked} written since checked now")

    def as_json(self) -> dict[str, Any]:
        last, checkpoint = self.verification, self.checkpoint
        return {
            "status": self.status, "summary": self.summary(), "head": self.head,
            "verified_through": self.verified_through, "unchecked": self.unchecked,
            "broken": {"audit_id": self.broken.audit_id, "reason": self.broken.reason} if self.broken else None,
            "last_verification": None if last is None else {
                "record": last.record, "at": last.at.isoformat(), "by": last.by, "intact": last.intact,
                "checked": last.checked, "summary": last.summary, "checkpoint": last.checkpoint},
            "last_checkpoint": None if checkpoint is None else {
                "audit_id": checkpoint.audit_id, "time": checkpoint.time, "record": checkpoint.record,
                "file": checkpoint.file},
        }


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%SZ")


def _latest(conn: Connection, sub_type: AuditSubType) -> Any:
    """The newest Security record of ``sub_type``, through the (audit_type, audit_timestamp) index."""
    c = audit_history.c
    return conn.execute(select(audit_history).where(c.audit_type == str(AuditType.SECURITY),
                                                    c.audit_sub_type == str(sub_type))
                        .order_by(c.audit_timestamp.desc(), c.audit_id.desc()).limit(1)).mappings().first()


def _last_verification(conn: Connection, breaks: list[ChainBreak]) -> LastVerification | None:
    row = _latest(conn, AuditSubType.AUDIT_VERIFIED)
    if row is None:
        return None
    problem = record_problem(conn, row)
    try:
        data = json.loads(row["details"]) if problem is None else None
        if data is None:
            raise ValueError
        verified = LastVerification(row["audit_id"], row["audit_timestamp"], row["user_name"], bool(data["intact"]),
                                    int(data["checked"]), str(data["record_hash"]), str(data["summary"]),
                                    data.get("checkpoint"))
    except (ValueError, KeyError, TypeError):
        problem = problem or f"record {row['audit_id']} is not a verification campaignkit recorded"
        breaks.append(ChainBreak(row["audit_id"], problem))
        return LastVerification(row["audit_id"], row["audit_timestamp"], row["user_name"], False, 0, GENESIS_HASH,
                                f"not trusted: {problem}", None)
    if not verified.intact:
        broken = data.get("broken") or {}
        breaks.append(ChainBreak(int(broken.get("audit_id", verified.checked + 1)),
                                 str(broken.get("reason", verified.summary))))
    return verified


_files: dict[Path, tuple[tuple[int, int], CheckpointFile]] = {}  # path -> ((mtime, size), what it held)
_files_lock = threading.Lock()


def _checkpoint_file(runtime: Runtime) -> tuple[Path, Checkpoint] | None:
    """The latest valid checkpoint of the configured file, where this host has one; read again only once it grew."""
    path = checkpoint_path(runtime.settings)
    try:
        seen = path.stat()
    except OSError:
        return None
    stamp = (seen.st_mtime_ns, seen.st_size)
    with _files_lock:
        cached = _files.get(path)
    if cached is None or cached[0] != stamp:
        try:
            cached = (stamp, read_checkpoints(path, runtime.audit_keys))
        except CampaignkitError:
            return None
        with _files_lock:
            _files[path] = cached
    latest = cached[1].latest
    return (path, latest) if latest is not None else None


def _last_checkpoint(runtime: Runtime, conn: Connection, head: int, breaks: list[ChainBreak]) -> LastCheckpoint | None:
    """The last signed checkpoint (its record in the trail, or the checkpoint file's when that saw more), whose
    record must still be there with the hash it signed: one row, however long the chain."""
    found: LastCheckpoint | None = None
    row = _latest(conn, AuditSubType.AUDIT_CHECKPOINT)
    if row is not None:
        try:
            if (problem := record_problem(conn, row)) is not None:
                raise ValueError(problem)
            signed = parse(row["details"] or "", runtime.audit_keys)
            found = LastCheckpoint(signed.audit_id, signed.time, signed.record_hash, row["audit_id"], None)
        except ValueError as exc:
            breaks.append(ChainBreak(row["audit_id"], f"record {row['audit_id']}: {exc}"))
    in_file = _checkpoint_file(runtime)
    if in_file is not None and (found is None or in_file[1].audit_id > found.audit_id):
        path, signed = in_file
        found = LastCheckpoint(signed.audit_id, signed.time, signed.record_hash, None, str(path))
    if found is None or found.audit_id == 0:
        return found
    seen = conn.execute(select(audit_history.c.record_hash).where(audit_history.c.audit_id == found.audit_id)).scalar()
    if seen is None:
        first = head + 1 if found.audit_id > head else found.audit_id
        missing = f"record {first} is missing" if first == found.audit_id else f"records {first}..{found.audit_id} " \
                                                                               "are missing"
        breaks.append(ChainBreak(first, f"{missing}: the checkpoint of {found.time} saw record {found.audit_id}"))
    elif seen != found.record_hash:
        breaks.append(ChainBreak(found.audit_id, f"record {found.audit_id} differs from the checkpoint of "
                                                 f"{found.time}: it or a record before it was re-hashed"))
    return found


def chain_state(runtime: Runtime) -> ChainState:
    """The chain as far as one page view can tell, without re-hashing the records a full verification covered.

    Records edited after the last full verification in the part it covered show at the next one ("Verify now",
    `audit verify --record`); the records written since are re-hashed here, and the last signed checkpoint's
    record is checked against its hash."""
    breaks: list[ChainBreak] = []
    through: int | None = None
    with reading(runtime.engine) as conn:
        head, _ = chain_head(conn, lock=False)
        last = _last_verification(conn, breaks)
        checkpoint = _last_checkpoint(runtime, conn, head, breaks)
        start = (last.checked, last.record_hash) if last is not None else (0, GENESIS_HASH)
        if breaks:
            pass  # the last verification found a break, or a record it rests on is broken
        elif last is not None and last.checked > head:
            breaks.append(ChainBreak(head + 1, f"records {head + 1}..{last.checked} are missing: the verification "
                                               f"of {_when(last.at)} checked them"))
        elif head - start[0] <= TAIL_LIMIT:
            report = verify_chain(conn, after=start)
            if report.broken is not None:
                breaks.append(report.broken)
            else:
                through = report.checked
        else:
            through = start[0]
    broken = min(breaks, key=lambda b: b.audit_id) if breaks else None
    status = "broken" if broken else "intact" if through == head else "unchecked"
    return ChainState(status, head, None if broken else through, broken, last, checkpoint)
