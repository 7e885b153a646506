"""What a phishing simulation calls things: delivery statuses, the events of seed 001, its audit sub-types and its
results listings. Kept free of heavy imports: the CLI's --help loads it."""

from __future__ import annotations

from campaignkit.core.kinds import Listing

LINK_PREFIX = "/p/"  # the recipients' pages (CampaignKind.link_paths)
SAMPLE_TOKEN = "0" * 32  # what a template sees when it is tried at create and launch
UNDELIVERED = "undelivered"  # the send step's edge, and the event, of an email that will not arrive
RESEND = "resend"

PENDING, DELIVERED, FAILED, BLOCKLISTED = "Pending", "Delivered", "Failed", "Blocklisted"
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED, BLOCKLISTED)

# The results' events: (column in phishing_results, the name shown). "Email sent" and "Delivery Status" lead.
EVENTS = (
    ("sent_at", "Email sent"),
    ("delivery_at", "Delivery Status"),
    ("opened_at", "Email opened"),
    ("reported_at", "Reported Email"),
    ("clicked_at", "Clicked link"),
    ("submitted_at", "Entered Credentials"),
    ("training_started_at", "Started training"),
    ("training_finished_at", "Finished training"),
)
# What each tracking hit is called as an event on its run, and the result column it sets.
HIT_EVENTS = {"opened": "opened_at", "clicked": "clicked_at", "submitted": "submitted_at",
              "reported": "reported_at", "training_started": "training_started_at",
              "training_finished": "training_finished_at"}
FILTERED = "filtered_hit"  # a scanner's hit: recorded on the run, counted nowhere

INTERACTION_EVENT = "Interaction Event"  # AuditType values, not imported, to keep the plugin light to load
OPERATIONS = "Operations"
EVENTS_CLEARED = "Campaign Events Cleared"
RESEND_REQUESTED = "Resend Requested"
BOUNCED_MAILBOX_REMOVED = "Bounced Mailbox Removed"

AUDIT_SUB_TYPES = {
    EVENTS_CLEARED: (OPERATIONS, "a person cleared the campaign events of selected users (which users, how many "
                                 "events; Email sent is kept)"),
    RESEND_REQUESTED: (OPERATIONS, "a person resent the simulated email to selected users (which users, how many)"),
    BOUNCED_MAILBOX_REMOVED: (OPERATIONS, "a person removed an address from the bounced mailboxes, so later "
                                          "campaigns send to it again"),
}

BY_USER = Listing(
    title="By User",
    columns=("User", "Email", "Attack", "Groups", *(shown for _, shown in EVENTS)),
    filters={"delivery": (*DELIVERY_STATUSES, "Not sent"), "event": tuple(shown for _, shown in EVENTS[2:]),
             "group": (), "attack": (), "search": (), "cycle": ()},
    sorts=("user", "email", "attack", "delivery", "sent", "opened", "clicked", "submitted", "reported"),
)
# By Group and By Attack count users at each event; the delivery status counts as one column per status.
COUNTS = ("Users", "Email sent", *DELIVERY_STATUSES, *(shown for _, shown in EVENTS[2:]))
BY_GROUP = Listing(title="By Group", columns=("Group", *COUNTS), filters={"cycle": ()}, sorts=("group",))
BY_ATTACK = Listing(title="By Attack", columns=("Attack", *COUNTS), filters={"cycle": ()}, sorts=("attack",))
