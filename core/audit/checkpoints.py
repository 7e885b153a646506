"""Signed checkpoints of the audit chain, kept outside the database so that a truncated or re-hashed tail shows.

A checkpoint is the chain head at one moment — (audit_id, record_hash, time, key_id) — signed with an HMAC subkey of
the audit key. Each is written twice: as one JSON line appended to a file (``audit.checkpoint_file``, default
``<var_dir>/audit-checkpoints.jsonl``) that an admin ships elsewhere, and as a Security / Audit Checkpoint record,
which every enabled audit sink receives through the outbox like any other record. ``audit verify --checkpoint FILE``
then holds the chain against the latest line whose signature is valid.
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import utc
from ..db import writing
from ..errors import CampaignkitError
from ..files import open_private, private_dir
from .catalog import AuditSubType, AuditType
from .keys import AuditKey, AuditKeys
from .records import Actor, chain_head, record

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..settings import Settings

CHECKPOINT_FILE = "audit-checkpoints.jsonl"
_CONTEXT = "campaignkit audit checkpoint v1"


@dataclass(frozen=True)
class Checkpoint:
    audit_id: int  # the last record when the checkpoint was taken (0: an empty chain)
    record_hash: str
    time: str  # ISO 8601, UTC
    key_id: str
    signature: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def _signature(key: AuditKey, audit_id: int, record_hash: str, time: str, key_id: str) -> str:
    message = "\x1f".join((_CONTEXT, str(audit_id), record_hash, time, key_id)).encode()
    return hmac.digest(key.checkpoint, message, "sha256").hex()


def sign(key: AuditKey, audit_id: int, record_hash: str, at: datetime) -> Checkpoint:
    time = utc(at).isoformat(timespec="microseconds")
    return Checkpoint(audit_id, record_hash, time, key.key_id, _signature(key, audit_id, record_hash, time,
                                                                          key.key_id))


def parse(line: str, keys: AuditKeys) -> Checkpoint:
    """One line of a checkpoint file, trusted only if its signature is valid; ValueError says why not."""
    try:
        data: Any = json.loads(line)
        checkpoint = Checkpoint(int(data["audit_id"]), str(data["record_hash"]), str(data["time"]),
                                str(data["key_id"]), str(data["signature"]))
    except (ValueError, KeyError, TypeError):
        raise ValueError("not a checkpoint (JSON with audit_id, record_hash, time, key_id, signature)") from None
    key = keys.find(checkpoint.key_id)
    if key is None:
        raise ValueError(f"signed with an unknown audit key (key_id {checkpoint.key_id})")
    expected = _signature(key, checkpoint.audit_id, checkpoint.record_hash, checkpoint.time, checkpoint.key_id)
    if not hmac.compare_digest(expected, checkpoint.signature):
        raise ValueError("the signature does not match (forged or altered)")
    return checkpoint


@dataclass
class CheckpointFile:
    latest: Checkpoint | None = None  # the valid checkpoint that saw the most records
    rejected: list[str] = field(default_factory=list)  # "line N: why", for lines not trusted


def read_checkpoints(path: Path, keys: AuditKeys) -> CheckpointFile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignkitError(f"cannot read the checkpoint file {path}: {exc}") from None
    found = CheckpointFile()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            checkpoint = parse(line, keys)
        except ValueError as exc:
            found.rejected.append(f"line {number}: {exc}")
            continue
        # The most records, not the last line: lines reordered by whoever holds the file prove nothing less.
        if found.latest is None or checkpoint.audit_id >= found.latest.audit_id:
            found.latest = checkpoint
    return found


def append_line(path: Path, line: str) -> None:
    """One O_APPEND write (so concurrent writers never interleave a line), on disk before returning; 0600."""
    data = (line + "\n").encode()
    private_dir(path.parent)
    created = not path.exists()
    fd = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        if os.write(fd, data) != len(data):  # a regular file takes a line this short whole, unless the disk is full
            raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # the new file's directory entry must survive a crash too
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def checkpoint_path(settings: Settings) -> Path:
    return settings.audit.checkpoint_file or settings.var_dir / CHECKPOINT_FILE


def take_checkpoint(runtime: Runtime, actor: Actor, path: Path | None = None,
                    code: object = None) -> tuple[Checkpoint, Path]:
    """Sign the chain head, append it to the checkpoint file, and record it (so the audit sinks get it too).

    The line is written before the record commits, under the head's lock: the head it names is already committed, so
    a line whose record then fails to commit is still a true checkpoint, and a file that cannot be written leaves
    no record claiming otherwise.
    """
    path = path or checkpoint_path(runtime.settings)
    now = runtime.clock.now()
    with writing(runtime.engine) as conn:
        last_id, last_hash = chain_head(conn, lock=True)
        checkpoint = sign(runtime.audit_keys.current, last_id, last_hash, now)
        try:
            append_line(path, checkpoint.to_json())
        except OSError as exc:
            raise CampaignkitError(f"cannot write the checkpoint file {path}: {exc}") from None
        record(conn, actor=actor, audit_type=AuditType.SECURITY, sub_type=AuditSubType.AUDIT_CHECKPOINT, at=now,
               details=checkpoint.to_json(), code=code)
    return checkpoint, path
