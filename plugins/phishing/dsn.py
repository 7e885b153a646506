"""Delivery-status notifications and phishing reports, parsed from raw mail into plain values (no database).

Each simulated phishing email is sent with a per-message envelope sender (VERP) ``<prefix>+<token>@<domain>``, the
SMTP DSN options ``RET=HDRS``, ``ENVID=<token>`` and ``NOTIFY=SUCCESS,FAILURE``, and the header
``X-Campaignkit-Token: <token>``. What comes back to ``<prefix>+<token>@<domain>`` -- success reports, failure
bounces, delay warnings -- is turned into `Notification` values by `parse_notifications`; a suspected phishing email
that an employee forwards to the report mailbox is traced back to its token by `parse_report`.

Both functions take untrusted bytes from the internet and never raise: a mailbox full of junk must not stop ingestion.
Nothing logged here contains message content.
"""

from __future__ import annotations

import email
import email.policy
import html
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

from flufl.bounce import scan_message

__all__ = ["Notification", "parse_notifications", "parse_report", "token_from_address"]

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Campaignkit-Token"
ACTIONS = frozenset({"delivered", "failed", "delayed", "relayed", "expanded"})
DIAGNOSTIC_LIMIT = 500
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
TYPE_PREFIX = re.compile(r"^\s*[A-Za-z0-9][A-Za-z0-9.+-]*\s*;\s*")  # "rfc822; ", "smtp; ", "dns; ", "X-Postfix; "
TOKEN_LINE = re.compile(rf"^[^\S\n]*(?:>[^\S\n]*)*{TOKEN_HEADER}:[^\S\n]*(\S+)[^\S\n]*$", re.IGNORECASE | re.MULTILINE)
BREAK_TAG = re.compile(r"<\s*/?\s*(br|p|div|tr|li|h[1-6]|table|blockquote)\b[^>]*>", re.I)  # a line ends here
TAG = re.compile(r"<[^>]*>")
STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
HEADER_TYPES = ("text/rfc822-headers", "message/global-headers")
MESSAGE_TYPES = ("message/rfc822", "message/global")
MAX_DEPTH = 5  # attached messages inside attached messages, as far as a report is followed
MAX_PARTS = 200  # a message with more parts than this is not a notification anyone sent in earnest
# Who sends bounces that are not RFC 3464 reports, and what they call them; anything else (out-of-office replies,
# spam) is not fed to flufl.bounce, whose last-resort heuristics take any "addr@x," line for a failed address.
BOUNCE_SENDERS = re.compile(r"^(mailer[-_]?daemon|postmaster|mail[-_]?delivery[-_]?(system|subsystem)?)(@|$)", re.I)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|return(ed)? to sender|delivery (status notification|failure|has failed|problem)"
    r"|failure notice|mail delivery failed|non[- ]?delivery|could not be delivered|delivery failed", re.I)
AUTO_REPLY_SUBJECT = re.compile(r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|autoreply)", re.I)
FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|wg|tr|rv|doorst|vs|vb|i)\s*:", re.I)  # FW:, Fwd:, WG:, TR:, RV:, ...


@dataclass(frozen=True)
class Notification:
    """One recipient's delivery status, as an MTA reported it for one message campaignkit sent."""

    token: str | None  # the message's token, from the VERP address, ENVID or returned headers
    recipient: str | None  # the address the report is about (Original-Recipient if given, else Final-Recipient)
    action: str  # delivered, failed, delayed, relayed or expanded: as the report says, whatever the status class
    status: str  # the enhanced status code, e.g. "5.1.1"; "" when the report gives none
    diagnostic: str  # the remote server's words without their type ("smtp; "), on one line, at most 500 characters
    remote_mta: str | None
    arrived_at: datetime | None  # when the reporting MTA received the message (UTC)
    reported_at: datetime | None  # the report's own Date (UTC)


def token_from_address(address: str, prefix: str) -> str | None:
    """The token in a VERP address ``<prefix>+<token>@<domain>``, or None.

    The prefix matches in any case (some MTAs lowercase local parts); the token keeps its case, since a base64 token
    depends on it. ``address`` may carry a display name, angle brackets or a DSN address type (``rfc822;``).
    """
    try:
        _, addr = parseaddr(TYPE_PREFIX.sub("", _text(address)))
        local, at, _domain = addr.rpartition("@")
        if not at or not prefix:
            return None
        head, plus, token = local.partition("+")
        if not plus or head.lower() != prefix.lower():
            return None
        return token if TOKEN.fullmatch(token) else None
    except Exception:  # untrusted input never stops ingestion
        return None


def parse_notifications(raw: bytes, *, prefix: str = "bounces") -> list[Notification]:
    """One `Notification` per recipient of a delivery-status notification; [] for anything else.

    RFC 3464 reports (``multipart/report; report-type=delivery-status``) are read field by field; old-style text
    bounces from a mailer daemon fall back to flufl.bounce and give ``failed`` notifications. Auto-replies, spam and
    garbage give []; nothing here raises.
    """
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        status_part = _find_part(message, STATUS_TYPES)
        if status_part is not None:
            return _from_report(message, status_part, prefix)
        if _is_report(message):
            return []  # a report of another kind (read receipt, abuse report) or a broken DSN
        if _looks_like_bounce(message):
            return _from_text_bounce(raw, message, prefix)
        return []
    except Exception as exc:  # a mailbox full of junk must not stop ingestion
        log.warning("unreadable notification skipped (%s)", type(exc).__name__)
        return []


def parse_report(raw: bytes) -> str | None:
    """The ``X-Campaignkit-Token`` of a phishing email an employee reported by forwarding it, or None.

    Looks in the message's own headers, in attached messages (message/rfc822, up to 5 deep, and .eml attachments),
    in text/rfc822-headers parts, and in the text of an inline forward (a line ``X-Campaignkit-Token: <token>``).
    """
    try:
        return _find_token(email.message_from_bytes(raw, policy=email.policy.default))
    except Exception as exc:  # a reported message can be anything
        log.warning("unreadable report skipped (%s)", type(exc).__name__)
        return None


# --- RFC 3464 reports ----------------------------------------------------------------------------------------------


def _from_report(message: Message, status_part: Message, prefix: str) -> list[Notification]:
    blocks = _status_blocks(status_part)
    if not blocks:
        return []
    per_message, recipients = blocks[0], blocks[1:]
    if not recipients and _header(per_message, "Final-Recipient"):
        recipients = [per_message]  # some MTAs write one block with the message and the recipient fields mixed
    reported_at = _date(_header(message, "Date"))
    arrived_at = _date(_header(per_message, "Arrival-Date")) or reported_at
    token = _report_token(message, per_message, prefix)
    notifications = []
    for block in recipients:
        action = _action(block)
        if action is None:
            continue  # neither Action nor Status: not a recipient block
        recipient = _strip_type(_header(block, "Original-Recipient") or _header(block, "Final-Recipient"))
        notifications.append(Notification(
            token=token,
            recipient=_address(recipient) or None,
            action=action,
            status=_status(_header(block, "Status")),
            diagnostic=_fold(_strip_type(_header(block, "Diagnostic-Code")))[:DIAGNOSTIC_LIMIT],
            remote_mta=_strip_type(_header(block, "Remote-MTA")) or None,
            arrived_at=_date(_header(block, "Arrival-Date")) or arrived_at,
            reported_at=reported_at,
        ))
    return notifications


def _status_blocks(part: Message) -> list[Message]:
    """The per-message block and the per-recipient blocks of a delivery-status part."""
    payload = part.get_payload()
    blocks = [block for block in payload if isinstance(block, Message)] if isinstance(payload, list) else []
    if blocks:
        return blocks
    # Encoded (base64, quoted-printable) or global-delivery-status parts arrive as text: split them ourselves.
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return []
    text = data.replace(b"\r\n", b"\n").strip(b"\n")
    parser = BytesHeaderParser(policy=email.policy.default)
    return [parser.parsebytes(chunk + b"\n") for chunk in re.split(rb"\n[ \t]*\n", text) if chunk.strip()]


def _action(block: Message) -> str | None:
    """The Action, trusted over the status class: Postfix reports an expired 4.4.1 with Action: failed."""
    action = _fold(_header(block, "Action")).lower().split(" ")[0]
    if action in ACTIONS:
        return action
    status = _status(_header(block, "Status"))
    return {"2": "delivered", "4": "delayed", "5": "failed"}.get(status[:1]) if status else None


def _report_token(message: Message, per_message: Message, prefix: str) -> str | None:
    """The token, from the most to the least direct evidence of which message the report is about."""
    returned = _find_part(message, HEADER_TYPES + MESSAGE_TYPES)
    returned_headers = _returned_headers(returned) if returned is not None else None
    senders = [_header(per_message, "X-Postfix-Sender")]
    if returned_headers is not None:
        senders.append(_header(returned_headers, "Return-Path"))
    for sender in senders:
        if sender and (token := token_from_address(sender, prefix)):
            return token
    envelope_id = _fold(_header(per_message, "Original-Envelope-Id"))
    if TOKEN.fullmatch(envelope_id):
        return envelope_id
    if token := next(_tokens_in_addresses(message, prefix), None):
        return token
    if returned_headers is not None:
        return _valid(_header(returned_headers, TOKEN_HEADER))
    return None


def _returned_headers(part: Message) -> Message | None:
    """The headers of the message a report returns, whether it returns headers only (RET=HDRS) or all (RET=FULL)."""
    inner = part.get_payload()
    if isinstance(inner, list):  # the parser reads every message/* part but delivery-status as a message
        return inner[0] if inner and isinstance(inner[0], Message) else None
    data = part.get_payload(decode=True)
    return BytesHeaderParser(policy=email.policy.default).parsebytes(data) if isinstance(data, bytes) else None


# --- bounces that are not RFC 3464 ---------------------------------------------------------------------------------


def _looks_like_bounce(message: Message) -> bool:
    """A bounce from a mail system, as opposed to a person's message. "Undelivered mail" is also a classic phishing
    lure, and a report of one may arrive in the same mailbox: only a daemon's From, or a null sender with a bounce's
    subject that is no forward, counts."""
    subject = _fold(_header(message, "Subject"))
    if AUTO_REPLY_SUBJECT.search(subject) or _header(message, "X-Autoreply") or _header(message, "X-Autorespond"):
        return False
    _, sender = parseaddr(_text(_header(message, "From")))
    if BOUNCE_SENDERS.match(sender):
        return True
    null_sender = _fold(_header(message, "Return-Path")) == "<>"  # as the delivering MTA recorded MAIL FROM:<>
    return null_sender and bool(BOUNCE_SUBJECT.search(subject)) and not FORWARD_SUBJECT.match(subject)


def _from_text_bounce(raw: bytes, message: Message, prefix: str) -> list[Notification]:
    try:
        # flufl.bounce's detectors are written for the compat32 message API.
        failed = scan_message(email.message_from_bytes(raw))
    except Exception as exc:  # its heuristics meet every kind of malformed text
        log.warning("text bounce not understood (%s)", type(exc).__name__)
        return []
    if not failed:
        return []
    token = next(_tokens_in_addresses(message, prefix), None) or _find_token(message)
    reported_at = _date(_header(message, "Date"))
    diagnostic = _fold(" ".join(_first_lines(message, 5)))[:DIAGNOSTIC_LIMIT]
    return [Notification(token=token, recipient=_address(address.decode("utf-8", "replace")), action="failed",
                         status="", diagnostic=diagnostic, remote_mta=None, arrived_at=reported_at,
                         reported_at=reported_at)
            for address in sorted(failed)]


def _first_lines(message: Message, count: int) -> list[str]:
    for part in _parts(message):
        if part.get_content_type() == "text/plain":
            lines = [line.strip() for line in _content(part).splitlines() if line.strip()]
            return lines[:count]
    return []


# --- reported messages ---------------------------------------------------------------------------------------------


def _find_token(message: Message, depth: int = 0) -> str | None:
    """The first valid X-Campaignkit-Token in ``message``, its attachments and its text."""
    if token := _valid(_header(message, TOKEN_HEADER)):
        return token
    if depth >= MAX_DEPTH:
        return None
    texts: list[str] = []
    for part in _parts(message):
        kind = part.get_content_type()
        if kind in MESSAGE_TYPES + HEADER_TYPES:
            inner = _returned_headers(part)
            if inner is not None and (token := _find_token(inner, depth + 1)):
                return token
        elif (part.get_filename() or "").lower().endswith(".eml"):
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                attached = email.message_from_bytes(data, policy=email.policy.default)
                if token := _find_token(attached, depth + 1):
                    return token
        elif kind in ("text/plain", "text/html"):
            texts.append(_content(part) if kind == "text/plain" else _html_text(_content(part)))
    for text in texts:  # an inline forward: some mail clients copy the original headers into the body
        for match in TOKEN_LINE.finditer(text):
            if token := _valid(match.group(1)):
                return token
    return None


# --- small helpers -------------------------------------------------------------------------------------------------


def _parts(message: Message) -> Iterator[Message]:
    """The parts of ``message`` in order, without descending into attached messages, at most MAX_PARTS."""
    stack, seen = [message], 0
    while stack and seen < MAX_PARTS:
        part = stack.pop(0)
        seen += 1
        if part.get_content_maintype() == "multipart":
            children = part.get_payload()
            if isinstance(children, list):
                stack[:0] = [child for child in children[:MAX_PARTS] if isinstance(child, Message)]
            continue
        yield part


def _find_part(message: Message, kinds: tuple[str, ...]) -> Message | None:
    return next((part for part in _parts(message) if part.get_content_type() in kinds), None)


def _is_report(message: Message) -> bool:
    return message.get_content_type() == "multipart/report"


def _tokens_in_addresses(message: Message, prefix: str) -> Iterator[str]:
    """Tokens in the headers naming where the report was delivered: the VERP address itself."""
    for name in ("To", "Delivered-To", "X-Original-To"):
        for value in _headers(message, name):
            for _, address in getaddresses([value]):
                if token := token_from_address(address, prefix):
                    yield token


def _headers(message: Message, name: str) -> list[str]:
    """Every raw value of header ``name``, unfolded; raw so that a malformed header cannot raise while parsed."""
    wanted = name.lower()
    return [_text(str(value)) for key, value in message.raw_items() if key.lower() == wanted]


def _header(message: Message, name: str) -> str:
    values = _headers(message, name)
    return values[0] if values else ""


def _text(value: str) -> str:
    """``value`` with undecodable bytes (kept as surrogates by the parser) replaced, so it can be stored."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _content(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:  # an unknown charset name
        return data.decode("utf-8", "replace")


def _html_text(markup: str) -> str:
    """The lines of an HTML body as a reader sees them, enough to find a header line quoted in a forward."""
    return html.unescape(TAG.sub("", BREAK_TAG.sub("\n", markup)))


def _fold(value: str) -> str:
    return " ".join(value.split())


def _strip_type(value: str) -> str:
    return _fold(TYPE_PREFIX.sub("", value))


def _address(value: str) -> str:
    _, address = parseaddr(value)
    return address or value.strip("<> \t")


def _status(value: str) -> str:
    match = STATUS.search(value)
    return ".".join(match.groups()) if match else ""


def _valid(value: str | None) -> str | None:
    value = _fold(value or "")
    return value if TOKEN.fullmatch(value) else None


def _date(value: str) -> datetime | None:
    """A UTC datetime from an RFC 5322 date; None when absent or unreadable. A date without zone counts as UTC."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(_fold(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
