"""Where delivery-status notifications and phishing reports come in: an IMAP mailbox, or an SMTP listener of our own.

Both hand each message to ``handle(raw_bytes)`` (for instance one that calls `dsn.parse_notifications` or
`dsn.parse_report` and records the result) and are interchangeable; pick one per mail domain.

**IMAP mailbox** (`ImapMailbox`): the MTA delivers to an ordinary mailbox and campaignkit drains it on a schedule.
Bounces go to ``<prefix>+<token>@<domain>``; with the MTA's recipient delimiter set to ``+`` (Postfix
``recipient_delimiter = +``, Exchange and Google Workspace "plus addressing") every such address lands in the one
mailbox ``<prefix>@<domain>``. Reports go to any mailbox employees forward to, e.g. ``phishing-report@<domain>``.
A message is moved to ``processed_folder`` (or deleted) only after ``handle`` returned, so delivery is at least once:
a crash in between means the message is handled again on the next drain, and handlers must be idempotent.

**Inbound SMTP** (`InboundSmtp`): campaignkit listens for SMTP itself and the bounce domain is routed to it, either
with a DNS MX record for a dedicated bounce domain (``bounces.example.org. MX 10 campaignkit.example.org.``, with a
TLS-terminating relay or firewall in front: the listener speaks plain SMTP) or, more commonly, by the organisation's
own MTA through a transport map, e.g. Postfix ``transport_maps`` with ``bounces.example.org smtp:[10.0.0.5]:2525``.
``handle`` runs before the listener answers 250 to DATA, so an acknowledged message has been handled; if ``handle``
raises, the sending MTA gets 451 and retries later.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from types import TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from imap_tools import BaseMailBox, ImapToolsError, MailBox, MailBoxStartTls, MailBoxUnencrypted

from campaignkit.core.errors import CampaignkitError

from .config import ImapConfig

__all__ = ["ImapConfig", "ImapMailbox", "InboundSmtp", "MailboxError"]

log = logging.getLogger(__name__)

Handler = Callable[[bytes], None]


class MailboxError(CampaignkitError):
    """The mailbox could not be reached or read; the message names the server and the cause, never the password."""


class ImapMailbox:
    """Drains an IMAP folder: each unseen message to ``handle``, then moved to ``processed_folder`` or deleted."""

    def __init__(self, config: ImapConfig) -> None:
        self.config = config

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def drain(self, handle: Handler, limit: int = 500) -> int:
        """Hand up to ``limit`` unseen messages to ``handle``; returns how many it handled.

        A message leaves the folder only after ``handle`` returned. One whose ``handle`` raised stays, unseen, and is
        offered again on the next drain; the others go on. Raises `MailboxError` when the server cannot be reached,
        refuses the login, or fails a command.
        """
        handled = 0
        try:
            with self._connect() as mailbox:
                if self.config.processed_folder and not mailbox.folder.exists(self.config.processed_folder):
                    mailbox.folder.create(self.config.processed_folder)
                # PEEK: fetching must not set \Seen, or a crash before the move would lose the message.
                for uid in mailbox.uids("UNSEEN UNDELETED")[:limit]:
                    raw = self._fetch(mailbox, uid)
                    if raw is None:
                        continue  # expunged meanwhile by another client
                    try:
                        handle(raw)
                    except Exception:
                        log.warning("IMAP %s: handling message uid %s failed; left in %s for the next drain",
                                    self.where, uid, self.config.folder, exc_info=True)
                        continue
                    if self.config.processed_folder:
                        mailbox.move(uid, self.config.processed_folder)
                    else:
                        mailbox.delete(uid)
                    handled += 1
        except (ImapToolsError, imaplib.IMAP4.error, OSError, EOFError) as exc:
            raise MailboxError(self._describe(exc, handled)) from None
        return handled

    def _connect(self) -> BaseMailBox:
        cfg = self.config
        mailbox: BaseMailBox
        if cfg.security == "none":
            mailbox = MailBoxUnencrypted(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
        else:
            context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
            if cfg.security == "tls":
                mailbox = MailBox(cfg.host, cfg.port, timeout=cfg.timeout_seconds, ssl_context=context)
            else:
                mailbox = MailBoxStartTls(cfg.host, cfg.port, timeout=cfg.timeout_seconds, ssl_context=context)
        try:
            return mailbox.login(cfg.username, cfg.password.get_secret_value(), initial_folder=cfg.folder)
        except BaseException:
            _quietly_logout(mailbox)
            raise

    @staticmethod
    def _fetch(mailbox: BaseMailBox, uid: str) -> bytes | None:
        """The message exactly as stored (imap-tools' MailMessage keeps only a parsed copy)."""
        status, data = mailbox.client.uid("FETCH", uid, "(BODY.PEEK[])")
        if status != "OK":
            raise imaplib.IMAP4.error(f"FETCH {uid} answered {status}")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def _describe(self, exc: BaseException, handled: int) -> str:
        cause = f"{type(exc).__name__}: {exc}"
        secret = self.config.password.get_secret_value()
        if secret:
            cause = cause.replace(secret, "***")  # belt and braces: no server should echo it, but some might
        done = f" after {handled} messages" if handled else ""
        return f"IMAP {self.where} ({self.config.security}) as {self.config.username}{done}: {cause}"


def _quietly_logout(mailbox: BaseMailBox) -> None:
    with contextlib.suppress(OSError, imaplib.IMAP4.error):
        mailbox.client.shutdown()


class _Handler:
    """aiosmtpd hooks: recipients checked by ``accept``, each message handed to ``handle`` before the 250."""

    def __init__(self, handle: Handler, accept: Callable[[str], bool]) -> None:
        self.handle = handle
        self.accept = accept

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        try:
            accepted = self.accept(address)
        except Exception:
            log.warning("inbound SMTP: the recipient check failed", exc_info=True)
            return "451 4.3.0 Temporary failure checking the recipient, try again later"
        if not accepted:
            return f"550 5.1.1 <{address}>: Recipient address rejected: not a notification or report address"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            # In a worker thread: a handler that writes to a database must not stall the other SMTP sessions.
            await asyncio.get_running_loop().run_in_executor(None, self.handle, raw)
        except Exception:
            log.warning("inbound SMTP: handling a message from %s failed; answered 451 so the sender retries",
                        session.peer, exc_info=True)
            return "451 4.3.0 Temporary failure processing the message, try again later"
        return "250 2.0.0 OK: handled"


class _Controller(Controller):
    """aiosmtpd's Controller, able to listen on port 0 (it learns the port the system chose) and to stop cleanly."""

    def _run(self, ready_event: threading.Event) -> None:
        try:
            super()._run(ready_event)
        finally:
            ready_event.set()  # aiosmtpd leaves it unset when the bind fails: start() would wait out ready_timeout

    def _trigger_server(self) -> None:
        if self._thread_exception is not None:
            raise self._thread_exception  # the bind failed: say so now, not after connecting to whoever holds the port
        server = self.server
        if isinstance(server, asyncio.Server) and self.port == 0:
            self.port = int(server.sockets[0].getsockname()[1])
        super()._trigger_server()

    def cancel_tasks(self, stop_loop: bool = True) -> None:
        """Stop accepting, cancel the sessions, and stop the loop only once they have ended (at most 2 s later).
        aiosmtpd stops the loop at once, which leaves a session still connected "destroyed but pending"."""
        if self.server is not None:
            self.server.close()
        if not stop_loop:
            super().cancel_tasks(stop_loop=False)
            return
        self.loop.create_task(self._shut_down())

    async def _shut_down(self) -> None:
        me = asyncio.current_task()
        deadline = self.loop.time() + 2.0
        # Again until none is left: a connection accepted just before the close starts its session afterwards.
        while (tasks := [task for task in asyncio.all_tasks(self.loop) if task is not me]) and \
                self.loop.time() < deadline:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=deadline - self.loop.time())
        self.loop.stop()


class InboundSmtp:
    """A small SMTP listener for bounces and reports (plain SMTP, no AUTH): see the module docstring for routing.

    ``accept(address)`` decides each RCPT TO (others get 550 5.1.1); messages over ``max_message_size`` bytes get
    552; ``handle(raw_bytes)`` runs before the 250, and if it raises the client gets 451 4.3.0 and retries. ``stop``
    drops a session still in DATA without an answer, so its sender retries too (``handle`` may already have run:
    handlers must be idempotent). ``port`` 0 lets the system choose; read ``.port`` once started.
    """

    def __init__(self, handle: Handler, accept: Callable[[str], bool], *, host: str = "127.0.0.1", port: int = 0,
                 max_message_size: int = 1_000_000, hostname: str | None = None) -> None:
        self._handler = _Handler(handle, accept)
        self._host, self._port = host, port
        self._max_message_size = max_message_size
        # The banner names this host; gethostname() rather than getfqdn(), which can wait on DNS.
        self._hostname = hostname or socket.gethostname()
        self._controller: _Controller | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The port it listens on: the one the system chose when it was given 0, once started."""
        return int(self._controller.port) if self._controller is not None else self._port

    def start(self) -> None:
        """Listen; raises `MailboxError` when the address cannot be bound (in use, not this host's)."""
        if self._controller is not None:
            return
        # A fresh controller each time: aiosmtpd's cannot start again after a failed start.
        controller = _Controller(self._handler, hostname=self._host, port=self._port, ready_timeout=5.0,
                                 data_size_limit=self._max_message_size, enable_SMTPUTF8=True,
                                 server_hostname=self._hostname)
        try:
            controller.start()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                controller.loop.close()
            if isinstance(exc, OSError):
                raise MailboxError(f"inbound SMTP cannot listen on {self._host}:{self._port}: {exc}") from exc
            raise
        self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            self._port = int(controller.port)  # a restart listens where clients were told to connect
            controller.stop()

    def __enter__(self) -> InboundSmtp:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"InboundSmtp({self.host}:{self.port}, running={self._controller is not None})"
