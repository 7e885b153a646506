"""An authenticated ldap3 connection per call, and what goes wrong on the way turned into step errors."""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ldap3 import NONE, SYNC, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPException,
    LDAPMaximumRetriesError,
    LDAPResponseTimeoutError,
)

from campaignkit.core import PermanentStepError, StepError, tls_context

from .config import NAME, LdapGroupConfig

# Result codes (RFC 4511 §4.1.9) that a later attempt may not get: the server is busy, restarting or overloaded.
TEMPORARY_RESULTS = frozenset({3, 11, 51, 52})  # timeLimitExceeded, adminLimitExceeded, busy, unavailable
INVALID_CREDENTIALS = 49
EXCERPT = 200


class VerifiedTls(Tls):  # type: ignore[misc]  # ldap3 has no type hints
    """TLS with the standard library's certificate and host name checks.

    ldap3's own Tls turns the context's host name check off and calls ssl.match_hostname, which Python 3.12
    removed; its fallback refuses IP addresses. This context checks both itself, before any byte is sent.
    """

    def __init__(self, ca_file: Path | None, host: str) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED)
        self._context = tls_context(ca_file)
        self._host = host

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self._context.wrap_socket(connection.socket, server_side=False,
                                                      do_handshake_on_connect=do_handshake,
                                                      server_hostname=self._host)


def result_error(doing: str, result: Mapping[str, Any], where: str, hint: str = "") -> StepError:
    """The step error for an LDAP result other than success; the server's own message is kept, shortened."""
    code = result.get("result")
    said = " ".join(str(result.get("message") or "").split())[:EXCERPT]
    message = f"{NAME}: {doing}: {where} answered {result.get('description')} ({code})"
    message += f": {said}" if said else ""
    message += f"; {hint}" if hint else ""
    return StepError(message) if code in TEMPORARY_RESULTS else PermanentStepError(message)


def _certificate_problem(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        # ldap3 re-raises socket errors as classes that also derive from the original exception's class.
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(exc: BaseException, conn: Connection) -> str:
    # ldap3 keeps the plain text in last_error; its socket exceptions' own str() is the repr of a tuple.
    text = conn.last_error if isinstance(exc, LDAPException) and conn.last_error else str(exc)
    return " ".join(str(text).split())[:EXCERPT] or type(exc).__name__


@contextmanager
def translated(doing: str, where: str, conn: Connection) -> Iterator[None]:
    """Turn ldap3's and the socket's exceptions into step errors: retry only what a later attempt can fix."""
    try:
        yield
    except StepError:
        raise
    except (LDAPException, OSError) as exc:
        reason = _reason(exc, conn)
        if _certificate_problem(exc):
            raise PermanentStepError(f"{NAME}: {doing}: the certificate of {where} is not trusted ({reason}); "
                                     "set ca_file to the CA that signed it") from None
        if isinstance(exc, LDAPCommunicationError | LDAPResponseTimeoutError | LDAPMaximumRetriesError | OSError):
            raise StepError(f"{NAME}: {doing}: {where} unreachable ({reason})") from None
        # StartTLS refused, a value ldap3 cannot encode: the same on every attempt.
        raise PermanentStepError(f"{NAME}: {doing} at {where}: {reason}") from None


def open_connection(config: LdapGroupConfig) -> Connection:
    """Connected, encrypted as configured and bound as bind_dn; the caller unbinds it."""
    tls = VerifiedTls(config.ca_file, config.host) if config.ldaps or config.use_starttls else None
    server = Server(config.host, port=config.port, use_ssl=config.ldaps, tls=tls, get_info=NONE,
                    connect_timeout=config.connect_timeout_seconds)
    # raise_exceptions=False: results come back as codes, which are classified here; network errors still raise.
    # auto_escape=False: values are escaped once, by the caller, with escape_filter_chars.
    conn = Connection(server, user=config.bind_dn, password=config.bind_password.get_secret_value(),
                      client_strategy=SYNC, receive_timeout=config.timeout_seconds, raise_exceptions=False,
                      auto_referrals=False, auto_escape=False, read_only=False)
    try:
        with translated("connecting", config.where, conn):
            conn.open(read_server_info=False)
            if config.use_starttls:
                conn.start_tls(read_server_info=False)
            if not conn.bind(read_server_info=False):
                hint = ""
                if conn.result.get("result") == INVALID_CREDENTIALS:
                    hint = f"check bind_dn and bind_password in plugins.config.{NAME}"
                raise result_error(f"binding as {config.bind_dn}", conn.result, config.where, hint)
    except BaseException:
        close(conn)
        raise
    return conn


def close(conn: Connection) -> None:
    with suppress(LDAPException, OSError):  # the connection is gone either way
        conn.unbind()


__all__ = ["VerifiedTls", "close", "open_connection", "result_error", "translated"]
