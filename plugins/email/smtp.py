"""smtp: delivers messages to an SMTP server (STARTTLS or implicit TLS), reusing a connection per worker thread."""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from campaignkit.core import (
    Channel,
    Delivery,
    Message,
    PermanentStepError,
    RecipientRefused,
    StepError,
    is_loopback,
)

from .message import build_email

TEMPORARY_ERRORS = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, TimeoutError, OSError)


class SmtpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # the input holds the password

    host: str = Field(description="SMTP server host name.")
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (port 587), tls = implicit TLS (port 465), or none (local relays; "
                                        "with a password only on a loopback host)."
    )
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(description="The From address, e.g. 'Access Reviews <reviews@example.org>'.")
    timeout_seconds: float = Field(default=30, gt=0, le=300, description="Connect, send and answer, per message.")
    messages_per_minute: int | None = Field(default=None, ge=1, description="Rate limit across all threads.")
    ca_file: Path | None = Field(default=None, description="PEM bundle of a private CA that signed the server.")

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> SmtpConfig:
        if self.password is not None and self.security == "none" and not is_loopback(self.host):
            # Without TLS, AUTH sends the password readably to anyone on the path to the server.
            raise ValueError('password with security = "none" would cross the network in clear: set security to '
                             '"starttls" (port 587) or "tls" (port 465); "none" with a password is only for a '
                             "relay on a loopback address")
        return self


class RateLimiter:
    """Spaces sends evenly: at most ``per_minute`` messages in any minute, across threads."""

    def __init__(self, per_minute: int) -> None:
        self.interval = 60.0 / per_minute
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class SmtpChannel(Channel):
    name = "smtp"
    Config = SmtpConfig
    config: SmtpConfig

    def __init__(self, config: SmtpConfig, runtime: object) -> None:
        super().__init__(config, runtime)  # type: ignore[arg-type]
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        self._limiter = RateLimiter(config.messages_per_minute) if config.messages_per_minute else None

    def send(self, message: Message) -> Delivery:
        email = build_email(message, self.config.sender)
        if self._limiter is not None:
            self._limiter.wait()
        try:
            smtp = self._connection()
            refused = smtp.send_message(email, from_addr=message.return_path, **_dsn_options(smtp, message))
        except smtplib.SMTPRecipientsRefused as exc:
            code, reason = next(iter(exc.recipients.values()))
            raise _failure(code, reason, message.to) from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            self._drop()
            raise _failure(exc.smtp_code, exc.smtp_error, message.to, recipient_refused=False) from None
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            raise StepError(f"SMTP login refused ({exc.smtp_code})") from None
        except TEMPORARY_ERRORS as exc:
            self._drop()  # the next attempt opens a fresh connection
            raise StepError(f"SMTP server unavailable: {type(exc).__name__}: {exc}") from None
        if refused:
            code, reason = next(iter(refused.values()))
            raise _failure(code, reason, message.to)
        return Delivery(message_id=str(email["Message-ID"]), detail={"smtp": self.config.host})

    def _connection(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP | None = getattr(self._local, "smtp", None)
        if smtp is not None:
            try:
                if smtp.noop()[0] == 250:
                    return smtp
            except smtplib.SMTPException:
                pass
            self._drop()
        smtp = self._open()
        self._local.smtp = smtp
        with self._lock:
            self._all.append(smtp)
        return smtp

    def _open(self) -> smtplib.SMTP:
        cfg = self.config
        context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
        smtp: smtplib.SMTP
        if cfg.security == "tls":
            smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_seconds, context=context)
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
            if cfg.security == "starttls":
                smtp.starttls(context=context)
        if cfg.username:
            smtp.login(cfg.username, cfg.password.get_secret_value() if cfg.password else "")
        return smtp

    def _drop(self) -> None:
        smtp = getattr(self._local, "smtp", None)
        self._local.smtp = None
        if smtp is not None:
            with self._lock:
                if smtp in self._all:
                    self._all.remove(smtp)
            _quietly_close(smtp)

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for smtp in connections:
            _quietly_close(smtp)


def _dsn_options(smtp: smtplib.SMTP, message: Message) -> dict[str, list[str]]:
    """Delivery status notifications as the message asks for them (RFC 3461), from a server that offers them: a
    server without the DSN extension would refuse the options, so there the message goes without them."""
    if not message.notify:
        return {}
    smtp.ehlo_or_helo_if_needed()
    if not smtp.has_extn("dsn"):
        return {}
    mail = ["RET=HDRS"] + ([f"ENVID={message.envelope_id}"] if message.envelope_id else [])
    return {"mail_options": mail, "rcpt_options": [f"NOTIFY={','.join(message.notify)}"]}


def _failure(code: int, reason: bytes | str, recipient: str, *, recipient_refused: bool = True) -> StepError:
    """A refusal as a step error: permanent for 5xx (RecipientRefused when the server refused the recipient itself,
    not the sender or the message), temporary otherwise."""
    text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    if 500 <= code < 600:
        if recipient_refused:
            return RecipientRefused(f"{recipient} rejected by the SMTP server: {code} {text}")
        return PermanentStepError(f"the SMTP server refused the message to {recipient}: {code} {text}")
    return StepError(f"{recipient} deferred by the SMTP server: {code} {text}")


def _quietly_close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
