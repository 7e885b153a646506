"""The audit vocabulary: audit types and sub-types under the AuditHistory catalog's names, campaignkit's own
additions marked, and the former names records written by older releases still carry."""

from __future__ import annotations

from enum import StrEnum


class AuditType(StrEnum):
    """Audit types of the AuditHistory vocabulary, plus campaignkit's own (OWN_AUDIT_TYPES).

    docs/audit.md lists every type and sub-type, when each is written and which are campaignkit's own;
    tests/test_audit_vocabulary.py keeps the two in step."""

    INTERACTION_EVENT = "Interaction Event"
    OPERATIONS = "Operations"
    SYSTEM_ACCESS = "System Access"
    SECURITY = "Security"
    CONFIGURATION = "Configuration"
    CLIENT_JOB = "Client Job"
    OBJECT_EXECUTION = "Object Execution"
    FILE_ACCESS = "File Access"
    SYSTEM_TASK = "System Task"
    OBJECT_CHANGE = "Object Change"  # campaignkit's own: defining and editing campaigns


class AuditSubType(StrEnum):
    """Sub-types of the AuditHistory vocabulary, under its names, where an action of ours matches; where nothing
    there fits, campaignkit's own (OWN_SUB_TYPES, marked below). Records keep the name they were written with (the
    chain hashes it), so a renamed sub-type keeps its former names in FORMER_NAMES for queries."""

    # Interaction Event: a campaign (workflow) and its steps (activities)
    WORKFLOW_STARTED = "Workflow Started"
    WORKFLOW_COMPLETED = "Workflow Completed"
    WORKFLOW_FAILED = "Workflow Failed"
    WORKFLOW_PAUSED = "Workflow Paused"
    WORKFLOW_RESTARTED = "Workflow Restarted"
    WORKFLOW_STOPPED = "Workflow Stopped"
    STOP_REQUEST = "Stop Request"
    WORKFLOW_PAUSE_REQUEST = "Workflow Pause Request"
    WORKFLOW_RESUME_REQUEST = "Workflow Resume Request"
    WORKFLOW_TERMINATION_REQUEST = "Workflow Termination Request"
    WORKFLOW_TRIGGER_REQUEST = "Workflow Trigger Request"
    ACTIVITY_STARTED = "Activity Started"
    ACTIVITY_COMPLETED = "Activity Completed"
    ACTIVITY_FAILED = "Activity Failed"
    # Operations
    FORCE_WORKFLOW_STATUS = "Force Workflow Status"
    # System Access
    LOGIN = "Login"
    LOGIN_FAILED = "Login Failed"
    LOG_OUT = "Log Out"
    CHANGE_PASSWORD = "Change Password"
    # Client Job
    FILE_IMPORT = "File Import"
    FILE_EXPORT = "File Export"
    EMAIL_DELIVERY_TEST = "Email Delivery Test"
    CONNECTIVITY_TEST = "Connectivity Test"
    # Object Execution
    OFFER_TEST_EMAIL = "Offer Test Email"
    # File Access (template files)
    FILE_READ = "File Read"
    # System Task
    STARTED = "Started"
    COMPLETED = "Completed"
    # campaignkit's own, where nothing in AuditHistory fits:
    LAUNCH_MISSED = "Launch Missed"  # Interaction Event: a scheduled cycle later than the grace period
    DEADLINE = "Deadline Reached"  # Interaction Event: a cycle's end_after passed
    CREATED = "Created"  # Object Change: a campaign defined
    EDITED = "Edited"  # Object Change: a campaign's definition replaced
    LINK_REJECTED = "Link Rejected"  # Security: a forged, tampered or expired link
    AUDIT_CHECKPOINT = "Audit Checkpoint"  # Security: a signed checkpoint of the audit chain's head
    AUDIT_VERIFIED = "Audit Verified"  # Security: the whole audit chain verified on request, with the result
    USER_CREATED = "User Created"  # Security: an account added
    ROLE_CHANGED = "Role Changed"  # Security: an account's role changed
    USER_DISABLED = "User Disabled"  # Security: an account disabled (its tokens stop working)
    USER_ENABLED = "User Enabled"  # Security: a disabled account enabled again
    TOKEN_CREATED = "Token Created"  # Security: a personal API token issued
    TOKEN_REVOKED = "Token Revoked"  # Security: a personal API token revoked
    ACCESS_DENIED = "Access Denied"  # Security: an account asked for what its role or token may not do
    RUNS_REPAIRED = "Runs Repaired"  # Operations: stuck runs fixed (`runs repair`, the scheduler's repair job)
    CAMPAIGN_SIMULATED = "Campaign Simulated"  # Operations: a campaign simulated (nothing sent), its summary kept
    SIMULATION_DELETED = "Simulation Deleted"  # Operations: a kept simulation deleted


OWN_AUDIT_TYPES = frozenset({AuditType.OBJECT_CHANGE})
OWN_SUB_TYPES = frozenset({
    AuditSubType.LAUNCH_MISSED, AuditSubType.DEADLINE, AuditSubType.CREATED,
    AuditSubType.EDITED, AuditSubType.LINK_REJECTED, AuditSubType.AUDIT_CHECKPOINT, AuditSubType.AUDIT_VERIFIED,
    AuditSubType.USER_CREATED, AuditSubType.ROLE_CHANGED, AuditSubType.USER_DISABLED, AuditSubType.USER_ENABLED,
    AuditSubType.TOKEN_CREATED, AuditSubType.TOKEN_REVOKED, AuditSubType.ACCESS_DENIED, AuditSubType.RUNS_REPAIRED,
    AuditSubType.CAMPAIGN_SIMULATED, AuditSubType.SIMULATION_DELETED,
})

# Names that records written before these sub-types took their AuditHistory names carry (campaignkit 0.1).
FORMER_NAMES: dict[AuditSubType, tuple[str, ...]] = {
    AuditSubType.WORKFLOW_PAUSE_REQUEST: ("Pause Request",),
    AuditSubType.WORKFLOW_RESUME_REQUEST: ("Resume Request",),
    AuditSubType.WORKFLOW_TERMINATION_REQUEST: ("Termination Request",),
    AuditSubType.WORKFLOW_TRIGGER_REQUEST: ("Trigger Request",),
}
_SAME_SUB_TYPE = {str(name): (str(current), *former) for current, former in FORMER_NAMES.items()
                  for name in (current, *former)}


def sub_type_names(name: str) -> tuple[str, ...]:
    """Every name records of this sub-type may carry: the current one and its former ones, whichever is given."""
    return _SAME_SUB_TYPE.get(name, (name,))
