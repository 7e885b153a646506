"""Audit records in the AuditHistory shape, written in the same transaction as the change they describe."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert

from .schema import audit_history


class AuditType(StrEnum):
    INTERACTION_EVENT = "Interaction Event"
    OPERATIONS = "Operations"
    SYSTEM_ACCESS = "System Access"
    SECURITY = "Security"
    CONFIGURATION = "Configuration"
    CLIENT_JOB = "Client Job"
    OBJECT_EXECUTION = "Object Execution"
    FILE_ACCESS = "File Access"
    SYSTEM_TASK = "System Task"
    OBJECT_CHANGE = "Object Change"


class AuditSubType(StrEnum):
    WORKFLOW_STARTED = "Workflow Started"
    WORKFLOW_COMPLETED = "Workflow Completed"
    WORKFLOW_FAILED = "Workflow Failed"
    WORKFLOW_STOPPED = "Workflow Stopped"
    TERMINATION_REQUEST = "Termination Request"
    TRIGGER_REQUEST = "Trigger Request"
    FORCE_WORKFLOW_STATUS = "Force Workflow Status"
    FILE_IMPORT = "File Import"
    FILE_EXPORT = "File Export"
    STARTED = "Started"
    COMPLETED = "Completed"
    # No AuditHistory sub-type fits defining or changing a campaign; these are ours.
    CREATED = "Created"
    EDITED = "Edited"


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


def record(
    conn: Connection,
    *,
    actor: Actor,
    audit_type: AuditType,
    sub_type: AuditSubType,
    at: datetime,
    obj: AuditObject | None = None,
    details: str | None = None,
    code: Any = None,
) -> None:
    """Append one audit row on ``conn``; it commits or rolls back with the change it describes."""
    cls = code if isinstance(code, type) else type(code) if code is not None else None
    conn.execute(
        insert(audit_history).values(
            user_name=actor.user_name,
            computer_name=actor.computer_name,
            computer_ip=actor.computer_ip,
            server_name=socket.gethostname(),
            audit_timestamp=at,
            object_id=obj.id if obj else None,
            object_name=obj.name if obj else None,
            object_folder=obj.folder if obj else None,
            version_major=obj.version[0] if obj and obj.version else None,
            version_minor=obj.version[1] if obj and obj.version else None,
            audit_type=audit_type.value,
            audit_sub_type=sub_type.value,
            details=details,
            class_name=f"{cls.__module__}.{cls.__qualname__}" if cls else None,
            assembly_name=(cls.__module__.split(".")[0] if cls else None),
        )
    )
