"""Builds the RFC 5322 message for a campaignkit Message; shared by the smtp and file channels."""

from __future__ import annotations

import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

from campaignkit.core import Message, RecipientRefused


def parse_address(address: str) -> Address:
    """A recipient we can deliver to, or a permanent failure naming what is wrong with it."""
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or "." not in domain or any(ch.isspace() for ch in address):
        raise RecipientRefused(f"invalid recipient address {address!r}")
    try:
        return Address(addr_spec=address)
    except (ValueError, IndexError) as exc:
        raise RecipientRefused(f"invalid recipient address {address!r}: {exc}") from None


def message_id(message: Message, domain: str) -> str:
    """Stable per idempotency key, so a redelivered step produces the same Message-ID and receivers can dedupe."""
    digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def build_email(message: Message, sender: str) -> EmailMessage:
    recipient = parse_address(message.to)
    email = EmailMessage()
    sender = message.sender or sender
    email["From"] = sender
    email["To"] = recipient
    email["Subject"] = message.subject
    # Dated when first composed: a retried or redelivered message is the same message, byte for byte.
    email["Date"] = formatdate(message.at.timestamp() if message.at else None, localtime=False)
    email["Message-ID"] = message_id(message, sender.rpartition("@")[2].strip("> ") or "campaignkit.local")
    email["Auto-Submitted"] = "auto-generated"
    for name, value in message.headers.items():
        email[name] = value
    email.set_content(message.text)
    if message.html is not None:
        email.add_alternative(message.html, subtype="html")
        email.set_boundary(_boundary(message))
    return email


def _boundary(message: Message) -> str:
    """The same for the same message (Python's default is random, and a retry must repeat the bytes), and drawn from
    the content itself, so no value placed in the content can foresee it and forge a part."""
    digest = hashlib.sha256("\x00".join((message.idempotency_key, message.text, message.html or "")).encode())
    return f"=_ck_{digest.hexdigest()[:40]}"
