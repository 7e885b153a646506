"""The audit key: it keys the audit chain (HMAC-SHA256) and signs its checkpoints, and lives outside the database.

How the key reaches the code that writes records: ``Runtime.engine`` carries an ``AuditKeys`` as the engine
execution option ``campaignkit_audit_keys``, which every connection of that engine inherits; ``append(conn, rows)``
reads it back with ``conn.get_execution_options()``. So ``record(conn, **fields)`` — called from dozens of places in
campaignkit and from third-party plugins — keeps its signature and cannot forget the key, and a connection that did
not come from a keyed runtime (a bare ``create_engine``) cannot write an unkeyed record: it gets MISSING_KEY.

Derived keys keep the uses apart: the chain and the checkpoints are keyed by different HMAC subkeys, and the public
``key_id`` stored on each record is a truncated SHA-256 of the domain-separated key, which names the key without
revealing anything usable.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..settings import Settings

AUDIT_KEYS_OPTION = "campaignkit_audit_keys"
MISSING_KEY = ("audit_key is not set: the audit chain is keyed by a secret kept outside the database; run "
               "`campaignkit init` (it creates var/secrets/audit_key) or set CAMPAIGNKIT_AUDIT_KEY")
KEY_ID_LENGTH = 16  # hex digits; matches audit_history.key_id


def key_id_of(secret: str) -> str:
    """The public name of a key: stored on each record so that verify knows which key to check it with."""
    return hashlib.sha256(b"campaignkit audit key id\x00" + secret.encode()).hexdigest()[:KEY_ID_LENGTH]


@dataclass(frozen=True)
class AuditKey:
    key_id: str
    chain: bytes = field(repr=False)  # keys record_hash
    checkpoint: bytes = field(repr=False)  # signs checkpoints

    @classmethod
    def from_secret(cls, secret: str) -> AuditKey:
        raw = secret.encode()
        return cls(key_id_of(secret), hmac.digest(raw, b"campaignkit audit chain", "sha256"),
                   hmac.digest(raw, b"campaignkit audit checkpoint", "sha256"))


@dataclass(frozen=True)
class AuditKeys:
    """The current key, which keys new records, and the previous ones, which still verify the records they keyed."""

    current: AuditKey
    previous: tuple[AuditKey, ...] = ()

    def find(self, key_id: str) -> AuditKey | None:
        for key in (self.current, *self.previous):
            if key.key_id == key_id:
                return key
        return None

    @classmethod
    def from_secrets(cls, current: str, previous: Iterable[str] = ()) -> AuditKeys:
        return cls(AuditKey.from_secret(current), tuple(AuditKey.from_secret(secret) for secret in previous))

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditKeys:
        if settings.audit_key is None:
            raise ConfigurationError(MISSING_KEY)
        return cls.from_secrets(settings.audit_key.get_secret_value(),
                                [key.get_secret_value() for key in settings.previous_audit_keys])


def keyed_engine(engine: Engine, keys: AuditKeys) -> Engine:
    """The same engine (same pool) whose connections carry ``keys`` for ``append`` and ``verify``."""
    return engine.execution_options(**{AUDIT_KEYS_OPTION: keys})


def audit_keys(conn: Connection) -> AuditKeys:
    """The keys this connection's engine carries; a ConfigurationError naming audit_key when it carries none."""
    keys = conn.get_execution_options().get(AUDIT_KEYS_OPTION)
    if not isinstance(keys, AuditKeys):
        raise ConfigurationError(MISSING_KEY)
    return keys
