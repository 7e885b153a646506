"""What an access review adds to the audit vocabulary (AuditHistory has nothing for an approver's decision)."""

from __future__ import annotations

INTERACTION_EVENT = "Interaction Event"  # AuditType.INTERACTION_EVENT: not imported, to keep the plugin light to load
DECISION_RECORDED = "Decision Recorded"
DECISION_REFUSED = "Decision Refused"

AUDIT_SUB_TYPES = {
    DECISION_RECORDED: (INTERACTION_EVENT, "an approver approved or revoked an item through their "
                                                          "link (as user_name, from the client's address)"),
    DECISION_REFUSED: (INTERACTION_EVENT, "an approver posted a decision on an item already decided "
                                                         "(as user_name; the same refusal again from one address is "
                                                         "coalesced into one record with a count)"),
}
