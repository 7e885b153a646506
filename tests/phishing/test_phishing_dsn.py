"""Delivery-status notifications and phishing reports parsed from raw mail (plugins/phishing/dsn.py).

The samples in samples/ are real DSNs as Postfix 3.7 wrote them. Their VERP tokens (``b1tok``) are shorter than any
token campaignkit makes, so most tests put a real-sized token in their place.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from campaignkit.plugins.phishing import dsn
from campaignkit.plugins.phishing.dsn import Notification, parse_notifications, parse_report, token_from_address

SAMPLES = Path(__file__).parent / "samples"
TOKEN = "Zq3xL0v-9_aB7cD2eF4gH1"  # 22 characters, as secrets.token_urlsafe(16) makes them
OTHER = "0123456789abcdef0123456789abcdef"  # a hex token


def sample(name: str, token: str | None = TOKEN) -> bytes:
    """A sample DSN, with ``token`` in place of the sample's short one (in the VERP addresses)."""
    raw = (SAMPLES / name).read_bytes()
    return raw if token is None else re.sub(rb"\b[ab]\dtok\b", token.encode(), raw)


# (recipient, action, status, diagnostic) per recipient, as Postfix reported them.
EXPECTED = {
    "dsn-success-delivered.eml": [("alice@corp.test", "delivered", "2.0.0",
                                   "delivery via virtual: delivered to maildir")],
    # flufl.bounce's heuristics report nosuch3@ (named in the returned To:) as failed here; the report says delivered.
    "dsn-success-multi-rcpt-message.eml": [("alice@corp.test", "delivered", "2.0.0",
                                            "delivery via virtual: delivered to maildir")],
    "dsn-failure-unknown-user.eml": [("nosuch@corp.test", "failed", "5.1.1", 'unknown user: "nosuch@corp.test"')],
    "dsn-failure-mixed-2rcpts.eml": [("nosuch3@corp.test", "failed", "5.1.1", 'unknown user: "nosuch3@corp.test"'),
                                     ("carol@full.test", "failed", "5.2.2", "Mailbox full (simulated)")],
    "dsn-failure-nohost-retfull.eml": [("dave@nohost.test", "failed", "5.1.2",
                                        "Host or domain name not found (simulated)")],
    "dsn-delayed-deferred-domain.eml": [("erin@defer.test", "delayed", "4.4.1", "Connection timed out (simulated)")],
    # Expired after retries: Action failed with a 4.x status. The Action is what counts.
    "dsn-failed-deferred-domain.eml": [("erin@defer.test", "failed", "4.4.1", "Connection timed out (simulated)")],
}


def summary(notifications: list[Notification]) -> list[tuple[str | None, str, str, str]]:
    return [(n.recipient, n.action, n.status, n.diagnostic) for n in notifications]


def test_every_sample_is_copied_from_the_shared_notes() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_postfix_sample_gives_action_status_recipient_diagnostic_and_token(name: str) -> None:
    notifications = parse_notifications(sample(name))
    assert summary(notifications) == EXPECTED[name]
    assert {n.token for n in notifications} == {TOKEN}
    assert {n.remote_mta for n in notifications} == {None}  # Postfix's own verdicts name no remote MTA
    for n in notifications:
        assert n.arrived_at is not None and n.arrived_at.tzinfo is UTC
        assert n.reported_at is not None and n.reported_at.tzinfo is UTC
        assert n.arrived_at <= n.reported_at


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_token_shorter_than_campaignkit_makes_is_not_taken(name: str) -> None:
    notifications = parse_notifications(sample(name, token=None))  # as written: bounces+b1tok@, ENVID b1-envid
    assert summary(notifications) == EXPECTED[name]
    assert {n.token for n in notifications} == {None}


def test_dates_are_utc_from_arrival_date_and_the_report_date() -> None:
    [expired] = parse_notifications(sample("dsn-failed-deferred-domain.eml"))
    assert expired.arrived_at == datetime(2026, 12, 1, 22, 57, 38, tzinfo=UTC)  # Arrival-Date
    assert expired.reported_at == datetime(2026, 12, 1, 22, 57, 44, tzinfo=UTC)  # the DSN's Date, 6 s later


def test_the_token_comes_from_the_most_direct_evidence_first() -> None:
    a, b, c, d, e = (letter * 22 for letter in "ABCDE")
    raw = sample("dsn-success-delivered.eml", token=d)  # d: the VERP address in To:, Delivered-To:, X-Original-To:
    raw = raw.replace(b"rfc822; bounces+" + d.encode(), b"rfc822; bounces+" + a.encode())  # X-Postfix-Sender
    raw = raw.replace(b"Return-Path: <bounces+" + d.encode(), b"Return-Path: <bounces+" + b.encode())  # returned
    raw = raw.replace(b"Original-Envelope-Id: b1-envid", b"Original-Envelope-Id: " + c.encode())
    raw = raw.replace(b"X-Campaign-Token: b1", b"X-Campaignkit-Token: " + e.encode())

    def token(message: bytes) -> str | None:
        [notification] = parse_notifications(message)
        return notification.token

    assert token(raw) == a  # X-Postfix-Sender: the envelope sender the reporting MTA saw
    raw = re.sub(rb"X-Postfix-Sender: .*\n", b"", raw)
    assert token(raw) == b  # the returned headers' Return-Path: the original envelope sender
    raw = re.sub(rb"Return-Path: <bounces.*\n", b"", raw)
    assert token(raw) == c  # ENVID
    raw = raw.replace(b"Original-Envelope-Id: " + c.encode(), b"Original-Envelope-Id: not a token")
    assert token(raw) == d  # where the report was delivered
    raw = raw.replace(b"bounces+" + d.encode(), b"bounces")
    assert token(raw) == e  # the header campaignkit put on the message
    raw = raw.replace(b"X-Campaignkit-Token: " + e.encode(), b"X-Campaignkit-Token: e")
    assert token(raw) is None


def test_verp_addresses_count_only_with_the_configured_prefix() -> None:
    [notification] = parse_notifications(sample("dsn-failure-unknown-user.eml"), prefix="returns")
    assert notification.token is None
    raw = sample("dsn-failure-unknown-user.eml").replace(b"Original-Envelope-Id: a2-envid",
                                                         b"Original-Envelope-Id: " + OTHER.encode())
    [notification] = parse_notifications(raw, prefix="returns")
    assert notification.token == OTHER  # the ENVID names the message whatever the prefix


@pytest.mark.parametrize(("address", "token"), [
    (f"bounces+{TOKEN}@corp.test", TOKEN),
    (f"Bounces+{OTHER}@CORP.test", OTHER),  # the prefix in any case; the token keeps its own
    (f"BOUNCES+{TOKEN}@corp.test", TOKEN),
    (f"<bounces+{TOKEN}@corp.test>", TOKEN),
    (f"Mail System <bounces+{TOKEN}@corp.test>", TOKEN),
    (f"rfc822; bounces+{TOKEN}@corp.test", TOKEN),
    ("bounces+" + "x" * 16 + "@corp.test", "x" * 16),
    ("bounces+" + "x" * 64 + "@corp.test", "x" * 64),
    ("bounces+" + "x" * 15 + "@corp.test", None),
    ("bounces+" + "x" * 65 + "@corp.test", None),
    (f"returns+{TOKEN}@corp.test", None),
    (f"bounces-{TOKEN}@corp.test", None),
    (f"xbounces+{TOKEN}@corp.test", None),
    (f"bounces+{TOKEN}", None),
    ("bounces+abcdefgh.ijklmnopq@corp.test", None),
    ("bounces+abcdefgh ijklmnopq@corp.test", None),
    (f"bounces+{TOKEN}+x@corp.test", None),
    ("bounces@corp.test", None),
    ("", None),
    ("\udcff\x00<>", None),
])
def test_token_from_address(address: str, token: str | None) -> None:
    assert token_from_address(address, "bounces") == token


REMOTE_BOUNCE = b"""\
Return-Path: <>
Date: Wed, 02 Dec 2026 09:15:02 +0100
From: Mail Delivery Subsystem <mailer-daemon@mx.corp.test>
To: bounces+%(token)s@corp.test
Subject: Delivery Status Notification (Failure)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message wasn't delivered.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.corp.test
Original-Envelope-Id: %(token)s
Arrival-Date: Wed, 02 Dec 2026 09:14:58 +0100

Final-Recipient: rfc822; alice.smith@mail.corp.test
Original-Recipient: rfc822; alice@corp.test
Action: Failed
Status: 5.1.1 (bad destination mailbox address)
Remote-MTA: dns; mail.corp.test
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does
    not exist.   Please try double-checking the recipient's email address
%(tail)s
--b--
"""


def remote_bounce(tail: bytes = b"", token: str = TOKEN) -> bytes:
    return REMOTE_BOUNCE % {b"token": token.encode(), b"tail": tail}


def test_a_remote_mta_s_report_gives_its_own_words_on_one_line() -> None:
    [n] = parse_notifications(remote_bounce())
    assert n == Notification(
        token=TOKEN, recipient="alice@corp.test", action="failed", status="5.1.1",
        diagnostic="550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking "
                   "the recipient's email address",
        remote_mta="mail.corp.test",
        arrived_at=datetime(2026, 12, 2, 8, 14, 58, tzinfo=UTC),
        reported_at=datetime(2026, 12, 2, 8, 15, 2, tzinfo=UTC))


def test_the_diagnostic_is_bounded() -> None:
    [n] = parse_notifications(remote_bounce(tail=b"    " + b"very long words " * 100))
    assert len(n.diagnostic) == 500 and n.diagnostic.startswith("550-5.1.1 ")


def test_broken_dates_and_bytes_are_tolerated() -> None:
    raw = remote_bounce(tail=b"    \xff\xfe not utf-8").replace(b"Wed, 02 Dec 2026 09:14:58 +0100", b"yesterday")
    raw = raw.replace(b"Date: Wed, 02 Dec 2026 09:15:02 +0100", b"Date: Wed, 99 Foo 2026 99:99:99 +9999")
    [n] = parse_notifications(raw)
    assert (n.arrived_at, n.reported_at) == (None, None)
    assert n.diagnostic.endswith("\ufffd\ufffd not utf-8")
    n.diagnostic.encode("utf-8")  # storable


def test_a_date_without_zone_counts_as_utc() -> None:
    [n] = parse_notifications(remote_bounce().replace(b"09:14:58 +0100", b"09:14:58 -0000"))
    assert n.arrived_at == datetime(2026, 12, 2, 9, 14, 58, tzinfo=UTC)


def test_without_action_the_status_class_decides_and_blocks_without_either_are_skipped() -> None:
    raw = remote_bounce(tail=b"\nFinal-Recipient: rfc822; bob@corp.test\nAction: delayed\n"
                             b"\nFinal-Recipient: rfc822; carol@corp.test\nAction: whatever\n")
    raw = raw.replace(b"Action: Failed\n", b"")
    assert [(n.recipient, n.action) for n in parse_notifications(raw)] == [
        ("alice@corp.test", "failed"), ("bob@corp.test", "delayed")]


GARBAGE = [
    b"",
    b"\x00\xff\xfe" * 1000,
    b"not a mail at all",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"x\"\n\n--x\n",
    b"Content-Type: multipart/report; boundary=\n\n",
    b"Content-Type: message/delivery-status\n\n\n\n",
    b"From: \xff\xfe <<<@@@>>>\nDate: \x00\nSubject: =?utf-8?b?!!!?=\n\nbody",
]


@pytest.mark.parametrize("raw", GARBAGE + [sample("dsn-failure-unknown-user.eml")[:n] for n in (40, 700, 1500)])
def test_garbage_and_truncated_reports_give_nothing_or_what_they_hold_without_raising(raw: bytes) -> None:
    for notification in parse_notifications(raw):
        assert notification.action in {"delivered", "failed", "delayed", "relayed", "expanded"}
    assert parse_report(raw) is None


AUTO_REPLY = b"""\
Return-Path: <>
From: Alice <alice@corp.test>
To: bounces+%s@corp.test
Subject: Automatic reply: Your password expires today
Auto-Submitted: auto-replied
Date: Wed, 02 Dec 2026 09:15:02 +0100

I am out of the office until Monday. Please contact
bob@corp.test, carol@corp.test, dave@corp.test,
or the service desk.
""" % TOKEN.encode()


def test_an_auto_reply_is_not_a_notification() -> None:
    # flufl.bounce alone would report carol@corp.test as a permanent failure (the ", addr," heuristic).
    assert parse_notifications(AUTO_REPLY) == []


def test_a_report_without_its_delivery_status_part_gives_nothing() -> None:
    raw = re.sub(rb"--22B272805CD\.1796165855/mta\.corp\.test\nContent-Description: Delivery report.*?\n(?=--)",
                 b"", sample("dsn-failure-unknown-user.eml"), flags=re.S)
    assert b"message/delivery-status" not in raw and b"multipart/report" in raw
    assert parse_notifications(raw) == []


def test_a_read_receipt_is_not_a_delivery_notification() -> None:
    raw = sample("dsn-success-delivered.eml").replace(b"report-type=delivery-status", b"report-type=disposition-"
                                                      b"notification").replace(b"message/delivery-status",
                                                                               b"message/disposition-notification")
    assert parse_notifications(raw) == []


QMAIL_BOUNCE = b"""\
Return-Path: <>
Date: 2 Dec 2026 10:00:00 -0000
From: MAILER-DAEMON@mx.example.net
To: bounces+%s@corp.test
Subject: failure notice

Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<nobody@example.net>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Return-Path: <bounces+%s@corp.test>
From: IT Service Desk <it@corp.test>
To: nobody@example.net
Subject: Your password expires today

SECRET-BODY-MARKER
""" % (TOKEN.encode(), TOKEN.encode())


def test_an_old_style_text_bounce_gives_a_failure_through_flufl_bounce() -> None:
    [n] = parse_notifications(QMAIL_BOUNCE)
    assert (n.token, n.recipient, n.action, n.status) == (TOKEN, "nobody@example.net", "failed", "")
    assert n.diagnostic.startswith("Hi. This is the qmail-send program at mx.example.net. I'm afraid")
    assert n.reported_at == datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def test_a_bounce_without_a_daemon_s_from_needs_a_null_sender_and_a_bounce_s_subject() -> None:
    raw = QMAIL_BOUNCE.replace(b"From: MAILER-DAEMON@mx.example.net", b"From: Mail System <mail@mx.example.net>")
    assert [n.recipient for n in parse_notifications(raw)] == ["nobody@example.net"]  # Return-Path <>, "failure notice"
    assert parse_notifications(raw.replace(b"Return-Path: <>", b"Return-Path: <mail@mx.example.net>")) == []
    assert parse_notifications(raw.replace(b"Subject: failure notice", b"Subject: Fwd: failure notice")) == []


def test_a_report_of_an_undelivered_mail_lure_is_a_report_not_a_bounce() -> None:
    lure = phish()
    lure.replace_header("Subject", "Undelivered Mail: 3 messages are held for you")
    report = forward(lure, text="Suspicious! Someone wrote to nobody@example.net, bob@corp.test, carol@corp.test,\n")
    report.replace_header("Subject", "FW: Undelivered Mail: 3 messages are held for you")
    report["Return-Path"] = "<alice@corp.test>"
    assert parse_notifications(report.as_bytes()) == []
    assert parse_report(report.as_bytes()) == TOKEN


def test_a_text_bounce_s_token_can_come_from_the_returned_message() -> None:
    raw = QMAIL_BOUNCE.replace(b"To: bounces+" + TOKEN.encode(), b"To: bounces").replace(
        b"\nSECRET-BODY-MARKER", b"X-Campaignkit-Token: " + OTHER.encode() + b"\n\nbody")
    [n] = parse_notifications(raw)
    assert n.token == OTHER


def test_nothing_logged_contains_the_message(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    parse_notifications(QMAIL_BOUNCE)

    def broken(*_: object) -> list[object]:
        raise ValueError("SECRET-BODY-MARKER")

    monkeypatch.setattr(dsn, "_status_blocks", broken)
    assert parse_notifications(sample("dsn-failure-unknown-user.eml")) == []
    assert "unreadable notification skipped (ValueError)" in caplog.text
    assert "SECRET-BODY-MARKER" not in caplog.text


# --- reports ---------------------------------------------------------------------------------------------------------


def phish(token: str = TOKEN) -> EmailMessage:
    original = EmailMessage()
    original["From"] = "IT Service Desk <it-desk@corp-support.test>"
    original["To"] = "alice@corp.test"
    original["Subject"] = "Your password expires today"
    original["X-Campaignkit-Token"] = token
    original.set_content("Click here to keep your password.")
    return original


def forward(attachment: EmailMessage | None = None, text: str = "This looks like phishing.") -> EmailMessage:
    report = EmailMessage()
    report["From"] = "Alice <alice@corp.test>"
    report["To"] = "phishing-report@corp.test"
    report["Subject"] = "FW: Your password expires today"
    report.set_content(text)
    if attachment is not None:
        report.add_attachment(attachment)  # message/rfc822, as "forward as attachment" sends it
    return report


def test_a_report_finds_the_token_of_an_attached_forward() -> None:
    report = forward(phish())
    assert "message/rfc822" in {part.get_content_type() for part in report.walk()}
    assert parse_report(report.as_bytes()) == TOKEN


def test_a_report_follows_forwards_of_forwards_but_not_forever() -> None:
    message = phish()
    for _ in range(4):
        message = forward(message)
    assert parse_report(message.as_bytes()) == TOKEN
    for _ in range(40):
        message = forward(message)
    assert parse_report(message.as_bytes()) is None


def test_a_report_finds_the_token_in_an_inline_forward() -> None:
    text = ("Is this real?\n\n-----Original Message-----\nFrom: IT Service Desk <it-desk@corp-support.test>\n"
            f"Subject: Your password expires today\nX-Campaignkit-Token: {TOKEN}\n\nClick here.\n")
    assert parse_report(forward(text=text).as_bytes()) == TOKEN
    quoted = "> From: IT Service Desk\n> X-Campaignkit-Token:  " + OTHER + "  \n> Click here.\n"
    assert parse_report(forward(text=quoted).as_bytes()) == OTHER


def test_a_report_finds_the_token_in_an_html_only_inline_forward() -> None:
    report = forward()
    report.set_content(f"<div><b>X-Campaignkit-Token:</b>&nbsp;{TOKEN}</div><p>Click</p>", subtype="html")
    assert parse_report(report.as_bytes()) == TOKEN


def test_a_report_finds_the_token_in_returned_headers_and_eml_files() -> None:
    report = forward()
    report.add_attachment(bytes(phish()), maintype="application", subtype="octet-stream", filename="phish.eml")
    assert parse_report(report.as_bytes()) == TOKEN
    report = forward()
    report.add_attachment(f"From: x@y.test\nX-Campaignkit-Token: {TOKEN}\n".encode(), maintype="text",
                          subtype="rfc822-headers")
    assert parse_report(report.as_bytes()) == TOKEN


def test_a_redirected_message_carries_the_token_itself() -> None:
    assert parse_report(bytes(phish())) == TOKEN


@pytest.mark.parametrize("token", ["", "short", "has spaces in it here", "x" * 65, "semi;colons;are;not;tokens"])
def test_a_report_without_a_valid_token_gives_none(token: str) -> None:
    assert parse_report(forward(text="Just a question about my password.").as_bytes()) is None
    assert parse_report(forward(phish(token)).as_bytes()) is None
    assert parse_report(forward(text=f"X-Campaignkit-Token: {token}\n").as_bytes()) is None
