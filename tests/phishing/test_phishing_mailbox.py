"""Where notifications and reports come in (plugins/phishing/mailbox.py): an IMAP mailbox, read here from a real
Dovecot over Maildirs a real Postfix delivers DSNs to, and the inbound SMTP listener."""

from __future__ import annotations

import secrets
import smtplib
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import mail_servers
import pytest
from imap_tools import MailBoxUnencrypted
from pydantic import ValidationError

from campaignkit.plugins.phishing.dsn import parse_notifications, parse_report, token_from_address
from campaignkit.plugins.phishing.mailbox import ImapConfig, ImapMailbox, InboundSmtp, MailboxError

SAMPLES = Path(__file__).parent / "samples"
PASSWORD = "secret-Imap-pw-7"
# One mailbox per test, so that the tests sharing the servers cannot see each other's messages.
USERS = ("bounces", "reports", "moved", "limited", "crash", "alice")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[mail_servers.Postfix, mail_servers.Dovecot]]:
    """One Postfix and one Dovecot for the module: Postfix's first start takes 2 s, Dovecot's stop 2.5 s."""
    mail_servers.require_programs(*mail_servers.POSTFIX_PROGRAMS, *mail_servers.DOVECOT_PROGRAMS)
    with mail_servers.private_directory() as base, mail_servers.postfix(base, USERS) as postfix, \
            mail_servers.dovecot(base, postfix.mail, {f"{u}@{mail_servers.DOMAIN}": PASSWORD for u in USERS}) as imap:
        yield postfix, imap


def imap_config(imap: mail_servers.Dovecot, user: str, **extra: object) -> ImapConfig:
    return ImapConfig.model_validate({"host": imap.host, "port": imap.port, "security": "none",
                                      "username": f"{user}@{mail_servers.DOMAIN}", "password": PASSWORD,
                                      "timeout_seconds": 5, **extra})


def phish(token: str, to: str = "alice@corp.test") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "IT Service Desk <it@corp.test>"
    message["To"] = to
    message["Subject"] = "Your password expires today"
    message["X-Campaignkit-Token"] = token
    message.set_content("Keep your password: click here.")
    return message


def append(imap: mail_servers.Dovecot, user: str, *messages: bytes, folder: str = "INBOX") -> None:
    with MailBoxUnencrypted(imap.host, imap.port, timeout=5).login(f"{user}@{mail_servers.DOMAIN}", PASSWORD) as box:
        for raw in messages:
            box.append(raw, folder)


def uids(imap: mail_servers.Dovecot, user: str, folder: str = "INBOX") -> list[str]:
    with MailBoxUnencrypted(imap.host, imap.port, timeout=5).login(f"{user}@{mail_servers.DOMAIN}", PASSWORD,
                                                                   initial_folder=folder) as box:
        return box.uids("ALL")


# --- end to end: Postfix writes the DSNs, Dovecot serves them, ImapMailbox drains them -------------------------------


def test_dsns_from_postfix_are_drained_over_imap_and_parsed(servers: tuple[mail_servers.Postfix,
                                                                         mail_servers.Dovecot]) -> None:
    postfix, imap = servers
    token = secrets.token_urlsafe(16)
    with smtplib.SMTP(mail_servers.HOST, postfix.accept_port, timeout=5) as smtp:
        refused = smtp.send_message(phish(token), from_addr=f"bounces+{token}@corp.test",
                                    to_addrs=["alice@corp.test", "nosuch@corp.test"],
                                    mail_options=["RET=HDRS", f"ENVID={token}"],
                                    rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    assert refused == {}  # this listener accepts everyone and bounces the unknown user afterwards
    postfix.wait_for_mail("bounces", 2, timeout=5)  # a success report and a failure report

    mailbox = ImapMailbox(imap_config(imap, "bounces"))
    received: list[bytes] = []
    assert mailbox.drain(received.append) == 2
    notifications = sorted((n for raw in received for n in parse_notifications(raw)), key=lambda n: n.action)
    assert [(n.recipient, n.action, n.status, n.token) for n in notifications] == [
        ("alice@corp.test", "delivered", "2.0.0", token),
        ("nosuch@corp.test", "failed", "5.1.1", token),
    ]
    assert notifications[1].diagnostic == 'unknown user: "nosuch@corp.test"'

    assert mailbox.drain(received.append) == 0  # drained messages are gone
    assert len(received) == 2
    assert uids(imap, "bounces") == []
    assert len(postfix.maildir("bounces")) == 0
    assert len(postfix.maildir("alice")) == 1  # the phish itself was delivered


def test_a_message_whose_handler_fails_stays_and_the_others_go_on(servers: tuple[mail_servers.Postfix,
                                                                                mail_servers.Dovecot]) -> None:
    _, imap = servers
    raws = [f"From: a@b.test\r\nSubject: report {i}\r\nX-Campaignkit-Token: {'t' * 20}{i}\r\n\r\nbody {i}\r\n"
            .encode() for i in range(3)]
    append(imap, "reports", *raws)
    seen: list[bytes] = []

    def handle(raw: bytes) -> None:
        seen.append(raw)
        if b"report 1" in raw:
            raise RuntimeError("the database is down")

    mailbox = ImapMailbox(imap_config(imap, "reports"))
    assert mailbox.drain(handle) == 2
    assert seen == raws  # the exact bytes, in order
    assert len(uids(imap, "reports")) == 1
    tokens: list[str | None] = []
    assert mailbox.drain(lambda raw: tokens.append(parse_report(raw))) == 1  # offered again, now handled
    assert tokens == ["t" * 20 + "1"]
    assert uids(imap, "reports") == []


class Crash(BaseException):
    """The process dying between handling a message and removing it (as KeyboardInterrupt or SystemExit would)."""


def test_a_crash_after_handling_reads_the_message_again(servers: tuple[mail_servers.Postfix,
                                                                      mail_servers.Dovecot]) -> None:
    _, imap = servers
    raw = b"Subject: once or more\r\n\r\nbody\r\n"
    append(imap, "crash", raw)
    mailbox = ImapMailbox(imap_config(imap, "crash"))

    def crash(message: bytes) -> None:
        raise Crash

    with pytest.raises(Crash):
        mailbox.drain(crash)
    received: list[bytes] = []
    assert mailbox.drain(received.append) == 1  # at least once: handlers must be idempotent
    assert received == [raw]


def test_handled_messages_can_be_kept_in_a_processed_folder(servers: tuple[mail_servers.Postfix,
                                                                         mail_servers.Dovecot]) -> None:
    _, imap = servers
    append(imap, "moved", (SAMPLES / "dsn-success-delivered.eml").read_bytes().replace(b"\n", b"\r\n"))
    mailbox = ImapMailbox(imap_config(imap, "moved", processed_folder="Processed"))
    received: list[bytes] = []
    assert mailbox.drain(received.append) == 1
    assert mailbox.drain(received.append) == 0
    assert [n.action for n in parse_notifications(received[0])] == ["delivered"]
    assert uids(imap, "moved") == []
    assert len(uids(imap, "moved", folder="Processed")) == 1


def test_a_drain_takes_at_most_limit_messages(servers: tuple[mail_servers.Postfix, mail_servers.Dovecot]) -> None:
    _, imap = servers
    append(imap, "limited", *[f"Subject: {i}\r\n\r\n{i}\r\n".encode() for i in range(3)])
    mailbox = ImapMailbox(imap_config(imap, "limited"))
    assert [mailbox.drain(lambda raw: None, limit=2) for _ in range(3)] == [2, 1, 0]


def test_a_wrong_password_is_a_mailbox_error_that_does_not_show_it(servers: tuple[mail_servers.Postfix,
                                                                                 mail_servers.Dovecot]) -> None:
    _, imap = servers
    wrong = "Wrong-Pw-Not-Shown-93"
    with pytest.raises(MailboxError) as excinfo:
        ImapMailbox(imap_config(imap, "bounces", password=wrong)).drain(lambda raw: None)
    text = str(excinfo.value)
    assert f"{imap.host}:{imap.port}" in text and "bounces@corp.test" in text
    assert "AUTHENTICATIONFAILED" in text or "Authentication failed" in text
    assert wrong not in text and PASSWORD not in text
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__


def test_an_unreachable_server_is_a_mailbox_error_naming_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        config = ImapConfig(host="127.0.0.1", port=port, security="none", username="u", password="pw-hidden-1",
                            timeout_seconds=2)
        with pytest.raises(MailboxError, match=rf"127\.0\.0\.1:{port} .*ConnectionRefusedError") as excinfo:
            ImapMailbox(config).drain(lambda raw: None)
    assert "pw-hidden-1" not in str(excinfo.value)


@pytest.mark.parametrize("host", ["imap.corp.test", "10.0.0.5", "0.0.0.0"])
def test_no_tls_is_refused_for_a_host_that_is_not_loopback(host: str) -> None:
    with pytest.raises(ValidationError, match="in clear") as excinfo:
        ImapConfig(host=host, security="none", username="u", password="pw-hidden-2")
    assert "pw-hidden-2" not in str(excinfo.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_no_tls_is_allowed_on_loopback(host: str) -> None:
    assert ImapConfig(host=host, port=143, security="none", username="u", password="p").security == "none"


def test_imap_configuration_is_checked() -> None:
    config = ImapConfig(host="imap.corp.test", username="u", password="p")
    assert (config.port, config.security, config.folder, config.processed_folder) == (993, "tls", "INBOX", None)
    assert "p" not in repr(config.password)
    with pytest.raises(ValidationError, match="implicit TLS"):
        ImapConfig(host="imap.corp.test", security="starttls", username="u", password="p")
    with pytest.raises(ValidationError, match="processed_folder"):
        ImapConfig(host="imap.corp.test", username="u", password="p", processed_folder="INBOX")
    with pytest.raises(ValidationError, match="extra"):
        ImapConfig(host="imap.corp.test", username="u", password="p", pasword="typo")


# --- the inbound SMTP listener -------------------------------------------------------------------------------------


class Recorder:
    """A handler that records what it got, failing the first ``failures`` calls as a database outage would."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[bytes] = []
        self.failures = failures
        self.lock = threading.Lock()

    def __call__(self, raw: bytes) -> None:
        with self.lock:
            self.calls.append(raw)
            if len(self.calls) <= self.failures:
                raise RuntimeError("the database is down")


def ours(address: str) -> bool:
    return token_from_address(address, "bounces") is not None or address.lower() == "phishing-report@corp.test"


TOKEN = "Zq3xL0v-9_aB7cD2eF4gH1"
VERP = f"bounces+{TOKEN}@corp.test"


def dsn_bytes() -> bytes:
    """A sample DSN as it travels over SMTP: CRLF line ends, with a real-sized token."""
    raw = (SAMPLES / "dsn-failure-unknown-user.eml").read_bytes().replace(b"a2tok", TOKEN.encode())
    return raw.replace(b"\n", b"\r\n")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def listener(recorder: Recorder) -> Iterator[InboundSmtp]:
    with InboundSmtp(recorder, ours, max_message_size=64_000) as server:
        yield server


def test_the_listener_hands_over_the_exact_bytes_of_a_bounce(listener: InboundSmtp, recorder: Recorder) -> None:
    assert listener.port > 0
    raw = dsn_bytes()
    with smtplib.SMTP(listener.host, listener.port, timeout=5) as smtp:
        assert smtp.sendmail("", [VERP], raw) == {}  # MAIL FROM:<>, as every bounce is sent
    assert recorder.calls == [raw]
    [notification] = parse_notifications(recorder.calls[0])
    assert (notification.token, notification.action, notification.status) == (TOKEN, "failed", "5.1.1")


def test_a_message_with_dot_lines_arrives_as_sent(listener: InboundSmtp, recorder: Recorder) -> None:
    raw = b"Subject: dots\r\n\r\n.\r\n..leading dots\r\n.\r\nend\r\n"
    with smtplib.SMTP(listener.host, listener.port, timeout=5) as smtp:
        smtp.sendmail("", ["phishing-report@corp.test"], raw)
    assert recorder.calls == [raw]


def test_a_recipient_outside_the_configured_addresses_is_refused(listener: InboundSmtp, recorder: Recorder) -> None:
    with smtplib.SMTP(listener.host, listener.port, timeout=5) as smtp, \
            pytest.raises(smtplib.SMTPRecipientsRefused) as excinfo:
        smtp.sendmail("", ["someone@other.test", "bounces+short@corp.test"], dsn_bytes())
    codes = {address: reply[0] for address, reply in excinfo.value.recipients.items()}
    assert codes == {"someone@other.test": 550, "bounces+short@corp.test": 550}
    assert b"5.1.1" in excinfo.value.recipients["someone@other.test"][1]
    assert recorder.calls == []


def test_a_handler_that_fails_answers_451_and_the_retry_is_handled(recorder: Recorder) -> None:
    recorder.failures = 1
    raw = dsn_bytes()
    with InboundSmtp(recorder, ours) as server, smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as excinfo:
            smtp.sendmail("", [VERP], raw)
        assert excinfo.value.smtp_code == 451 and b"4.3.0" in excinfo.value.smtp_error
        assert smtp.sendmail("", [VERP], raw) == {}  # the sending MTA's retry
    assert recorder.calls == [raw, raw]


def test_a_recipient_check_that_fails_answers_451(recorder: Recorder) -> None:
    def broken(address: str) -> bool:
        raise RuntimeError("lookup failed")

    with InboundSmtp(recorder, broken) as server, smtplib.SMTP(server.host, server.port, timeout=5) as smtp, \
            pytest.raises(smtplib.SMTPRecipientsRefused) as excinfo:
        smtp.sendmail("", [VERP], b"Subject: x\r\n\r\nx\r\n")
    assert excinfo.value.recipients[VERP][0] == 451


def test_an_oversize_message_gets_552(listener: InboundSmtp, recorder: Recorder) -> None:
    big = b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 1000  # 72 kB, over the 64 kB limit
    with smtplib.SMTP(listener.host, listener.port, timeout=5) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail("", [VERP], big)  # declared with SIZE= in MAIL FROM: refused at once
        assert refused.value.smtp_code == 552
        smtp.rset()
        # A client that does not declare the size is refused after the data.
        assert smtp.docmd("MAIL FROM:<>")[0] == 250
        assert smtp.rcpt(VERP)[0] == 250
        code, reply = smtp.data(big)
        assert (code, reply) == (552, b"Error: Too much mail data")
    assert recorder.calls == []


def test_the_listener_stops_listening_when_the_block_ends(recorder: Recorder) -> None:
    with InboundSmtp(recorder, ours) as server:
        port = server.port
        with socket.create_connection((server.host, port), timeout=2):
            pass
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_a_port_in_use_is_a_clear_error_and_a_later_start_works(recorder: Recorder) -> None:
    with InboundSmtp(recorder, ours) as taken:
        server = InboundSmtp(recorder, ours, port=taken.port)
        with pytest.raises(MailboxError, match=rf"cannot listen on 127\.0\.0\.1:{taken.port}"):
            server.start()
    with server, smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp.sendmail("", [VERP], b"Subject: x\r\n\r\nx\r\n")
    assert recorder.calls == [b"Subject: x\r\n\r\nx\r\n"]
