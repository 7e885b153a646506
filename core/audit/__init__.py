"""The audit trail: records in the AuditHistory shape (records.py) under the catalog's vocabulary (catalog.py), keyed
into a hash chain (keys.py) with signed checkpoints (checkpoints.py), read back (queries.py) and delivered to the
sinks an admin enables (dispatch.py)."""

from .catalog import FORMER_NAMES, OWN_AUDIT_TYPES, OWN_SUB_TYPES, AuditSubType, AuditType, sub_type_names
from .records import (
    GENESIS_HASH,
    Actor,
    AuditObject,
    ChainBreak,
    ChainReport,
    append,
    chain_hash,
    chain_head,
    entry,
    escape_controls,
    keyed_hash,
    record,
    verify,
    verify_chain,
)

__all__ = [
    "FORMER_NAMES",
    "GENESIS_HASH",
    "OWN_AUDIT_TYPES",
    "OWN_SUB_TYPES",
    "Actor",
    "AuditObject",
    "AuditSubType",
    "AuditType",
    "ChainBreak",
    "ChainReport",
    "append",
    "chain_hash",
    "chain_head",
    "entry",
    "escape_controls",
    "keyed_hash",
    "record",
    "sub_type_names",
    "verify",
    "verify_chain",
]
