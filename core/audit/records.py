"""Audit records in the AuditHistory shape, written in the same transaction as the change they describe."""

from __future__ import annotations

import getpass
import hashlib
import hmac
import inspect
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Dialect, String, insert, select, type_coerce, update

from ..clock import utc
from ..db.bulk import PreparedStatement
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
_GIVEN = HASHED_FIELDS[1:]  # what a row handed to append() carries
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
    named = None if code is None else code if isinstance(code, type) or inspect.isroutine(code) else type(code)
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


def append(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Append rows (``entry`` values) to the chain inside the caller's transaction; returns their audit ids.

    The batch API: many records cost one chain-head lock, one pass that hashes them in order and one executemany.
    Each record is keyed by the current audit key, which the connection carries as an execution option
    (``Runtime.engine`` puts it there; see core/audit/keys.py): a connection without one raises a
    ConfigurationError naming audit_key rather than write a record anyone with the database could recompute.
    """
    if not rows:
        return []
    key = audit_keys(conn).current
    keyed = _keyed_hasher(key)
    last_id, last_hash = chain_head(conn, lock=True)
    first = last_id + 1
    values = []
    for audit_id, row in enumerate(rows, start=first):
        fields = [audit_id, *map(row.get, _GIVEN)]  # in HASHED_FIELDS' order
        last_hash = keyed(last_hash, fields)
        fields.append(last_hash)
        values.append(fields)
    # Plain lists to the driver, each value converted by its column's type (the time) and the key's id once:
    # SQLAlchemy's executemany of dictionaries spent more per row than the hashing does.
    _inserting(conn.dialect, key.key_id).execute(conn, values)
    last_id += len(values)
    conn.execute(update(audit_chain).where(audit_chain.c.id == 1).values(last_audit_id=last_id, last_hash=last_hash))
    return list(range(first, last_id + 1))


@lru_cache(maxsize=8)
def _inserting(dialect: Dialect, key_id: str) -> PreparedStatement:
    """The audit insert, compiled once per database and key rather than for every append (a fifth of a millisecond:
    as much as the rest of a one-record append)."""
    return PreparedStatement(dialect, insert(audit_history), (*HASHED_FIELDS, "record_hash"), shared={"key_id": key_id})


def chain_head(conn: Connection, *, lock: bool) -> tuple[int, str]:
    """The last audit id and hash; ``lock`` holds the head until the transaction ends (appends and checkpoints)."""
    head_query = select(audit_chain.c.last_audit_id, audit_chain.c.last_hash).where(audit_chain.c.id == 1)
    if lock and conn.dialect.name == "postgresql":
        head_query = head_query.with_for_update()  # SQLite's writer already holds the database lock
    head = conn.execute(head_query).one()
    return head.last_audit_id, head.last_hash


def _text(value: Any) -> str:
    """One field as the chain hashes it: NUL for None, a time as UTC ISO 8601 with microseconds, else str()."""
    if value is None:
        return "\x00"
    if isinstance(value, datetime):
        if value.tzinfo is None:  # naive is UTC (as utc() takes it): how verify reads the column, cheaply
            return value.isoformat(timespec="microseconds") + "+00:00"
        return (value if value.tzinfo is UTC else utc(value)).isoformat(timespec="microseconds")
    return str(value)


def _joined(previous: str, values: Iterable[Any]) -> bytes:
    """The previous hash and the values, each after a unit separator: the bytes a record's hash covers.

    One join and one digest call: the same bytes as feeding the parts one by one, at a fraction of the cost. This
    runs for every record appended and verified, so text (most values), None and whole numbers take no call.
    """
    return "\x1f".join([previous, *[value if (kind := value.__class__) is str else "\x00" if value is None
                                     else str(value) if kind is int else _text(value) for value in values]]).encode()


def _message(previous: str, row: Mapping[Any, Any], fields: tuple[str, ...]) -> bytes:
    """The bytes a record's hash covers, from its ``fields`` in ``row`` (NUL for one missing)."""
    return _joined(previous, [row.get(name) for name in fields])


def keyed_hash(key: AuditKey, previous: str, row: Mapping[Any, Any]) -> str:
    """HMAC-SHA256 with the audit key over the previous hash, this record's fields and its key_id."""
    return hmac.digest(key.chain, _message(previous, row, KEYED_FIELDS), "sha256").hex()


def _keyed_hasher(key: AuditKey) -> Callable[[str, Sequence[Any]], str]:
    """``keyed_hash`` for many records of one key: each a sequence of values in HASHED_FIELDS order, its key_id
    ``key.key_id``. The HMAC's keyed state is set up once and copied per record, not derived again for each."""
    keyed = hmac.new(key.chain, digestmod="sha256")
    key_id = ("\x1f" + key.key_id).encode()

    def hashed(previous: str, values: Sequence[Any]) -> str:
        mac = keyed.copy()
        mac.update(_joined(previous, values) + key_id)
        return mac.hexdigest()

    return hashed


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


# The columns verify reads, in this order: a record's hashed fields, then its key's name and its hash. The time comes
# as the text SQLite stores and is parsed in _hashed_values, with fromisoformat as SQLAlchemy's DateTime would: its
# per-row result processing was a fifth of verify's time. PostgreSQL's driver hands a datetime either way.
_CHAINED = (*HASHED_FIELDS, "key_id", "record_hash")
_CHAINED_COLUMNS = [type_coerce(audit_history.c[name], String()) if name == "audit_timestamp"
                    else audit_history.c[name] for name in _CHAINED]
_TIME, _KEY_ID, _RECORD_HASH = HASHED_FIELDS.index("audit_timestamp"), len(HASHED_FIELDS), len(HASHED_FIELDS) + 1


def _hashed_values(row: Sequence[Any]) -> list[Any]:
    """The hashed fields of a row of _CHAINED_COLUMNS, its time a datetime (naive UTC, as the column stores it)."""
    values = list(row[:_KEY_ID])
    if values[_TIME].__class__ is str:
        values[_TIME] = datetime.fromisoformat(values[_TIME])
    return values


class _Walk:
    """verify's state: one record after the other, in id order."""

    def __init__(self, conn: Connection, checkpoint: Checkpoint | None) -> None:
        self.keys = audit_keys(conn)
        self.checkpoint = checkpoint
        self.previous, self.expected, self.legacy = GENESIS_HASH, 1, 0
        self.keyed = False
        self.hash_at_checkpoint: str | None = None
        self._found: dict[str, AuditKey] = {}  # key_id -> key, looked up once per key rather than per record
        self._hashers: dict[str, Callable[[str, Sequence[Any]], str]] = {}  # key_id -> _keyed_hasher, for steps()

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
            if key.key_id not in self._found:
                self._found[key.key_id] = key
                self._hashers[key.key_id] = _keyed_hasher(key)
            self.keyed = True
            digest = keyed_hash(key, self.previous, row)
        if digest != row["record_hash"]:
            return f"record {audit_id} was altered"
        if self.checkpoint is not None and audit_id == self.checkpoint.audit_id:
            self.hash_at_checkpoint = digest
        self.previous, self.expected = digest, audit_id + 1
        return None

    def steps(self, rows: Iterable[Sequence[Any]]) -> str | None:
        """``step`` over rows of the _CHAINED columns; returns why the first broken one is broken, or None.

        The usual record (the next id, keyed with a key met before, intact, not the checkpoint's) is checked right
        here, from its tuple; any other goes through ``step``, which has every rule and says what is wrong.
        """
        hashers, at_checkpoint = self._hashers, self.checkpoint.audit_id if self.checkpoint is not None else None
        previous, expected = self.previous, self.expected
        for row in rows:
            values = _hashed_values(row)
            keyed = hashers.get(row[_KEY_ID])
            if keyed is not None and row[0] == expected != at_checkpoint:
                digest = keyed(previous, values)
                if digest == row[_RECORD_HASH]:
                    previous, expected = digest, expected + 1
                    continue
            self.previous, self.expected = previous, expected
            stored = dict(zip(HASHED_FIELDS, values, strict=True), key_id=row[_KEY_ID], record_hash=row[_RECORD_HASH])
            if (reason := self.step(stored)) is not None:
                return reason
            previous, expected = self.previous, self.expected
        self.previous, self.expected = previous, expected
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
    columns = select(*_CHAINED_COLUMNS)
    while True:  # a page at a time, by id: each is a range of the primary key, however long the chain
        rows = conn.execute(columns.where(audit_history.c.audit_id > last).order_by(audit_history.c.audit_id)
                            .limit(chunk)).all()
        if not rows:
            break
        if (reason := walk.steps(rows)) is not None:
            return ChainReport(walk.expected - 1, walk.legacy, ChainBreak(walk.expected, reason), checkpoint,
                               walk.previous)
        last = rows[-1][0]
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
