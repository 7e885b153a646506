"""Audit records in the AuditHistory shape, written in the same transaction as the change they describe."""

from __future__ import annotations

import getpass
import hashlib
import hmac
import inspect
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from ..clock import utc
from ..db.schema import audit_chain, audit_history
from .catalog import AuditSubType, AuditType
from .keys import AuditKey, audit_keys

if TYPE_CHECKING:
    from .checkpoints import Checkpoint


@dataclass(frozen=True)
class Actor:
    """Who acted: a person (their login) or a system task (its instance id), and from where."""

    user_name: str
    computer_name: str | None = None
    computer_ip: str | None = None

    @classmethod
    def local_user(cls) -> Actor:
        try:
            user = getpass.getuser()
        except Exception:  # no passwd entry in some containers
            user = f"uid:{os.getuid()}"
        return cls(user_name=user, computer_name=socket.gethostname(), computer_ip="127.0.0.1")

    @classmethod
    def system(cls, instance_id: str) -> Actor:
        return cls(user_name=instance_id, computer_name=socket.gethostname())


@dataclass(frozen=True)
class AuditObject:
    id: str | None
    name: str | None
    folder: str | None = None
    version: tuple[int, int] | None = None


GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "audit_id", "user_name", "computer_name", "computer_ip", "server_name", "audit_timestamp", "object_id",
    "object_name", "object_folder", "version_major", "version_minor", "audit_type", "audit_sub_type", "details",
    "class_name", "assembly_name",
)
KEYED_FIELDS = (*HASHED_FIELDS, "key_id")  # a keyed record also binds the name of its key
TEXT_FIELDS = (
    "user_name", "computer_name", "computer_ip", "server_name", "object_id", "object_name", "object_folder",
    "audit_type", "audit_sub_type", "details", "class_name", "assembly_name",
)
_texts = itemgetter(*TEXT_FIELDS)
_SERVER_NAME = socket.gethostname()
# C0 controls (newline, tab, carriage return and ESC among them), DEL and C1 controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED_CONTROLS.get(char) or f"\\x{ord(char):02x}"


def escape_controls(text: str) -> str:
    """Control characters as visible escapes (ESC as ``\\x1b``, newline as ``\\n``); other text unchanged.

    Audit details carry what unauthenticated clients sent (a rejected path, a link): raw, an ESC sequence would
    drive the terminal of whoever reads the export, and a newline would forge a line in a log-shaped sink.
    isprintable() runs in C and is true for almost all text, which then costs no regular expression.
    """
    return text if text.isprintable() else _CONTROL.sub(_visible, text)


def entry(
    *,
    actor: Actor,
    audit_type: AuditType | str,
    sub_type: AuditSubType | str,  # a kind's own sub-types are plain strings (CampaignKind.audit_sub_types)
    at: datetime,
    obj: AuditObject | None = None,
    details: str | None = None,
    code: Any = None,
) -> dict[str, Any]:
    """One audit row's values, without id and hash (``append`` assigns those)."""
    # A class, a function (scheduler jobs are plain functions) or an instance: name the code itself.
    named = code if isinstance(code, type) or inspect.isroutine(code) else type(code) if code is not None else None
    row = {
        "user_name": actor.user_name,
        "computer_name": actor.computer_name,
        "computer_ip": actor.computer_ip,
        "server_name": _SERVER_NAME,
        "audit_timestamp": utc(at),
        "object_id": obj.id if obj else None,
        "object_name": obj.name if obj else None,
        "object_folder": obj.folder if obj else None,
        "version_major": obj.version[0] if obj and obj.version else None,
        "version_minor": obj.version[1] if obj and obj.version else None,
        "audit_type": str(audit_type),
        "audit_sub_type": str(sub_type),
        "details": details,
        "class_name": f"{named.__module__}.{named.__qualname__}" if named else None,
        # The top-level package names the distribution: campaignkit, or the plugin's own.
        "assembly_name": named.__module__.split(".")[0] if named else None,
    }
    try:  # one test over all the text in C: almost every record has no control character at all
        clean = "".join(filter(None, _texts(row))).isprintable()
    except TypeError:  # a value that is not text (a plugin's UUID as object id): look field by field
        clean = False
    if not clean:
        for name in TEXT_FIELDS:
            value = row[name]
            if isinstance(value, str):
                row[name] = escape_controls(value)
    return row


def record(conn: Connection, **fields: Any) -> int:
    """Append one audit row on ``conn``; it commits or rolls back with the change it describes."""
    return append(conn, [entry(**fields)])[0]


def append(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Append rows to the chain inside the caller's transaction; returns their audit ids.

    Each record is keyed by the current audit key, which the connection carries as an execution option
    (``Runtime.engine`` puts it there; see core/audit/keys.py): a connection without one raises a
    ConfigurationError naming audit_key rather than write a record anyone with the database could recompute.
    """
    if not rows:
        return []
    key = audit_keys(conn).current
    last_id, last_hash = chain_head(conn, lock=True)
    for row in rows:
        last_id += 1
        row["audit_id"] = last_id
        row["key_id"] = key.key_id
        last_hash = row["record_hash"] = keyed_hash(key, last_hash, row)
    conn.execute(insert(audit_history), rows)
    conn.execute(update(audit_chain).where(audit_chain.c.id == 1).values(last_audit_id=last_id, last_hash=last_hash))
    return [row["audit_id"] for row in rows]


def chain_head(conn: Connection, *, lock: bool) -> tuple[int, str]:
    """The last audit id and hash; ``lock`` holds the head until the transaction ends (appends and checkpoints)."""
    head_query = select(audit_chain.c.last_audit_id, audit_chain.c.last_hash).where(audit_chain.c.id == 1)
    if lock and conn.dialect.name == "postgresql":
        head_query = head_query.with_for_update()  # SQLite's writer already holds the database lock
    head = conn.execute(head_query).one()
    return head.last_audit_id, head.last_hash


def _message(previous: str, row: Mapping[Any, Any], fields: tuple[str, ...]) -> bytes:
    """The previous hash and this record's fields, each after a unit separator (NUL for None).

    One join and one digest call: the same bytes as feeding the parts one by one, at a fraction of the cost.
    """
    parts = [previous]
    for name in fields:
        value = row.get(name)
        if value is None:
            parts.append("\x00")
        elif isinstance(value, datetime):  # already UTC, from entry() and the database: no astimezone copy
            parts.append((value if value.tzinfo is UTC else utc(value)).isoformat(timespec="microseconds"))
        else:
            parts.append(str(value))
    return "\x1f".join(parts).encode()


def keyed_hash(key: AuditKey, previous: str, row: Mapping[Any, Any]) -> str:
    """HMAC-SHA256 with the audit key over the previous hash, this record's fields and its key_id."""
    return hmac.digest(key.chain, _message(previous, row, KEYED_FIELDS), "sha256").hex()


def chain_hash(previous: str, row: Mapping[Any, Any]) -> str:
    """The legacy, unkeyed sha256 of records written before the chain was keyed (key_id NULL); verify only."""
    return hashlib.sha256(_message(previous, row, HASHED_FIELDS)).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    audit_id: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    checked: int  # records whose link verified, from the first on
    legacy: int  # of those, unkeyed records written before the chain was keyed
    broken: ChainBreak | None
    checkpoint: Checkpoint | None = None  # the checkpoint the chain was held against, if one was given
    last_hash: str = GENESIS_HASH  # the hash of record ``checked``, as verified


def _missing(first: int, last: int) -> str:
    return f"record {first} is missing" if first == last else f"records {first}..{last} are missing"


class _Walk:
    """verify's state: one record after the other, in id order."""

    def __init__(self, conn: Connection, checkpoint: Checkpoint | None) -> None:
        self.keys = audit_keys(conn)
        self.checkpoint = checkpoint
        self.previous, self.expected, self.legacy = GENESIS_HASH, 1, 0
        self.keyed = False
        self.hash_at_checkpoint: str | None = None
        self._found: dict[str, AuditKey] = {}  # key_id -> key, looked up once per key rather than per record

    def step(self, row: Mapping[Any, Any]) -> str | None:
        """Check one record's link; returns why it is broken, or None."""
        audit_id = row["audit_id"]
        if audit_id != self.expected:
            return _missing(self.expected, audit_id - 1)
        if row["key_id"] is None:
            # Unkeyed records are the trail written before the chain was keyed: only ever a prefix of it. Checkpoint
            # records came with the key, so an unkeyed one was re-hashed by someone without the key.
            if self.keyed or row["audit_sub_type"] == AuditSubType.AUDIT_CHECKPOINT:
                return f"record {audit_id} was altered: it is unkeyed after the chain was keyed"
            digest = chain_hash(self.previous, row)
            self.legacy += 1
        else:
            key = self._found.get(row["key_id"]) or self.keys.find(row["key_id"])
            if key is None:
                return (f"record {audit_id} is keyed with an unknown audit key (key_id {row['key_id']}): add that key "
                        "to previous_audit_keys, or the record was forged")
            self._found[key.key_id] = key
            self.keyed = True
            digest = keyed_hash(key, self.previous, row)
        if digest != row["record_hash"]:
            return f"record {audit_id} was altered"
        if self.checkpoint is not None and audit_id == self.checkpoint.audit_id:
            self.hash_at_checkpoint = digest
        self.previous, self.expected = digest, audit_id + 1
        return None

    def against_checkpoint(self) -> ChainBreak | None:
        """The chain must still reach the checkpoint's record, with exactly its hash then."""
        checkpoint, last = self.checkpoint, self.expected - 1
        if checkpoint is None or checkpoint.audit_id == 0:
            return None
        if checkpoint.audit_id > last:
            return ChainBreak(last + 1, f"{_missing(last + 1, checkpoint.audit_id)}: the checkpoint of "
                                        f"{checkpoint.time} saw record {checkpoint.audit_id}")
        if self.hash_at_checkpoint != checkpoint.record_hash:
            return ChainBreak(checkpoint.audit_id, f"record {checkpoint.audit_id} differs from the checkpoint of "
                                                   f"{checkpoint.time}: it or a record before it was re-hashed")
        return None


def _resume(conn: Connection, walk: _Walk, after: tuple[int, str]) -> ChainBreak | None:
    """Start ``walk`` after record ``after[0]``, verified before with hash ``after[1]``, if it still has it."""
    audit_id, record_hash = after
    if audit_id == 0:
        return None
    stored = conn.execute(select(audit_history.c.record_hash, audit_history.c.key_id)
                          .where(audit_history.c.audit_id == audit_id)).first()
    if stored is None:
        return ChainBreak(audit_id, f"record {audit_id} is missing: it was verified before")
    if stored.record_hash != record_hash:
        return ChainBreak(audit_id, f"record {audit_id} differs from when it was verified: it or a record before "
                                    "it was re-hashed")
    walk.previous, walk.expected, walk.keyed = record_hash, audit_id + 1, stored.key_id is not None
    return None


def verify_chain(conn: Connection, *, checkpoint: Checkpoint | None = None, chunk: int = 5000,
                 after: tuple[int, str] | None = None) -> ChainReport:
    """Walk the chain in id order, each record's HMAC with the key its key_id names (current or previous).

    Finds the first edited, inserted or deleted record, and one re-hashed without the key. Given a checkpoint (signed
    and kept outside the database), also a truncated tail, even with the chain head updated to match. ``after``
    (audit_id, record_hash) of a record verified before starts the walk past it, to the head: only the records
    written since are re-hashed (core/audit/verification.py shows the chain's state so on every audit page).
    """
    walk = _Walk(conn, checkpoint)
    if after is not None and (moved := _resume(conn, walk, after)) is not None:
        return ChainReport(0, 0, moved, checkpoint)
    last = walk.expected - 1
    while True:
        rows = conn.execute(
            select(audit_history).where(audit_history.c.audit_id > last).order_by(audit_history.c.audit_id)
            .limit(chunk)
        ).mappings().all()
        if not rows:
            break
        for row in rows:
            reason = walk.step(row)
            if reason is not None:
                return ChainReport(walk.expected - 1, walk.legacy, ChainBreak(walk.expected, reason), checkpoint,
                                   walk.previous)
        last = rows[-1]["audit_id"]
    checked = walk.expected - 1
    broken = walk.against_checkpoint()
    if broken is None:
        last_id, last_hash = chain_head(conn, lock=False)
        if last_id > checked:
            broken = ChainBreak(checked + 1, f"{_missing(checked + 1, last_id)}: the chain head says {last_id}")
        elif last_id != checked:
            broken = ChainBreak(last_id + 1, f"the chain head says {last_id} records, found {checked}")
        elif last_hash != walk.previous:
            broken = ChainBreak(checked, f"record {checked} does not match the chain head")
    return ChainReport(checked, walk.legacy, broken, checkpoint, walk.previous)


def record_problem(conn: Connection, row: Mapping[Any, Any]) -> str | None:
    """One record's own link, from the stored hash of the record before it: why it is broken, or None. Cheap; what
    it cannot see (the records before, re-hashed) a walk of the chain does."""
    walk = _Walk(conn, None)
    audit_id = row["audit_id"]
    if audit_id > 1:
        before = conn.execute(select(audit_history.c.record_hash, audit_history.c.key_id)
                              .where(audit_history.c.audit_id == audit_id - 1)).first()
        if before is None:
            return _missing(audit_id - 1, audit_id - 1)
        walk.previous, walk.keyed = before.record_hash, before.key_id is not None
    walk.expected = audit_id
    return walk.step(row)


def verify(conn: Connection, chunk: int = 5000) -> tuple[int, ChainBreak | None]:
    """verify_chain without a checkpoint: how many records were checked and the first broken link, if any."""
    report = verify_chain(conn, chunk=chunk)
    return report.checked, report.broken
