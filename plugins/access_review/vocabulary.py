"""What an access review calls things: the audit sub-types it adds (AuditHistory has nothing for an approver's
decision) and its run listing, the Run History. Kept free of heavy imports: the CLI's --help loads it."""

from __future__ import annotations

from campaignkit.core.kinds import Listing

INTERACTION_EVENT = "Interaction Event"  # AuditType.INTERACTION_EVENT: not imported, to keep the plugin light to load
DECISION_RECORDED = "Decision Recorded"
DECISION_REFUSED = "Decision Refused"

AUDIT_SUB_TYPES = {
    DECISION_RECORDED: (INTERACTION_EVENT, "an approver approved or revoked an item through their link (as "
                                           "user_name, from the client's address)"),
    DECISION_REFUSED: (INTERACTION_EVENT, "an approver posted a decision on an item already decided (as user_name; "
                                          "the same refusal again from one address is coalesced into one record "
                                          "with a count)"),
}

STATUSES = ("Pending Response", "Message Delivery Failed", "Approved", "Revoked", "Terminated")
RESULTS = ("Success", "Failure")
HISTORY = Listing(
    title="Run History",
    columns=("User", "Application", "Approver", "Response Status", "Action Time", "Result"),
    filters={"status": STATUSES, "result": RESULTS, "approver": (), "application": (), "cycle": ()},
    sorts=("user", "application", "approver", "status", "time", "result", "id"),
)
