"""syslog: sends each audit record as an RFC 5424 message over UDP, TCP (RFC 6587 octet counting) or a unix socket."""

from __future__ import annotations

import select
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from campaignkit.core import AuditSink

from .base import SinkConfig

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8,
    "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14, "clock": 15,
    **{f"local{n}": 16 + n for n in range(8)},
}
SEVERITIES = {
    "emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7,
}
BOM = "\ufeff".encode()
NIL = "-"
# The SD-PARAM names carried in each message, with the record field they come from.
SD_PARAMS = (
    ("auditId", "audit_id"), ("type", "audit_type"), ("subType", "audit_sub_type"), ("user", "user_name"),
    ("computer", "computer_name"), ("ip", "computer_ip"), ("objectId", "object_id"), ("objectName", "object_name"),
    ("objectFolder", "object_folder"), ("versionMajor", "version_major"), ("versionMinor", "version_minor"),
    ("recordHash", "record_hash"),
)


class SyslogConfig(SinkConfig):
    transport: Literal["udp", "tcp", "unix"] = Field(default="udp", description="udp, tcp or unix (datagram).")
    host: str = Field(default="127.0.0.1", min_length=1, description="Receiver host for udp and tcp.")
    port: int = Field(default=514, ge=1, le=65535, description="Receiver port for udp and tcp.")
    socket_path: Path = Field(default=Path("/dev/log"), description="The datagram socket for transport unix.")
    facility: str = Field(default="local0", description="A facility name (local0 … local7, auth, audit, …).")
    severity: str = Field(default="notice", description="The severity of every message (notice, info, …).")
    app_name: str = Field(default="campaignkit", min_length=1, max_length=48, pattern=r"^[!-~]+$")
    sd_id: str = Field(
        default="campaignkit@32473", max_length=32, pattern=r'^[!#-<>-\\^-~]+@[0-9.]+$',
        description="The structured-data id: name@<private enterprise number>.",
    )
    timeout_seconds: float = Field(default=5, gt=0, le=300, description="Connect and send timeout.")
    max_message_bytes: int = Field(
        default=8192, ge=480, description="Longer messages have their text (details) shortened to fit."
    )

    @field_validator("facility")
    @classmethod
    def _known_facility(cls, value: str) -> str:
        if value.lower() not in FACILITIES:
            raise ValueError(f"unknown facility {value!r} (known: {', '.join(FACILITIES)})")
        return value.lower()

    @field_validator("severity")
    @classmethod
    def _known_severity(cls, value: str) -> str:
        if value.lower() not in SEVERITIES:
            raise ValueError(f"unknown severity {value!r} (known: {', '.join(SEVERITIES)})")
        return value.lower()


class SyslogSink(AuditSink):
    name = "syslog"
    Config = SyslogConfig
    config: SyslogConfig

    _sock: socket.socket | None = None

    def emit(self, records: Sequence[Mapping[str, Any]]) -> None:
        messages = [format_message(record, self.config) for record in records]
        try:
            self._send_all(messages)
        except OSError:
            # The receiver restarted or the connection broke: reconnect and send the whole batch once more.
            # Messages written into the dead connection may be gone, so repeating all of them is the safe choice.
            self.close()
            self._send_all(messages)

    def _send_all(self, messages: list[bytes]) -> None:
        sock = self._connected()
        for message in messages:
            if self.config.transport == "tcp":
                sock.sendall(b"%d %s" % (len(message), message))  # RFC 6587 octet counting
            else:
                sock.send(message)

    def _connected(self) -> socket.socket:
        if self._sock is not None and self.config.transport == "tcp" and _peer_closed(self._sock):
            self.close()  # sending into a connection the receiver closed would lose the first messages silently
        if self._sock is None:
            self._sock = self._connect()
        return self._sock

    def _connect(self) -> socket.socket:
        timeout = self.config.timeout_seconds
        if self.config.transport == "tcp":
            return socket.create_connection((self.config.host, self.config.port), timeout=timeout)
        if self.config.transport == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            target: Any = str(self.config.socket_path)
        else:
            family, kind, proto, _, target = socket.getaddrinfo(
                self.config.host, self.config.port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(target)  # a connected datagram socket reports an unreachable receiver as an error
        except OSError:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


def _peer_closed(sock: socket.socket) -> bool:
    """True when the receiver has closed its end: the socket is readable yet holds no data."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def format_message(record: Mapping[str, Any], config: SyslogConfig) -> bytes:
    """``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG`` with the record's details as MSG."""
    pri = FACILITIES[config.facility] * 8 + SEVERITIES[config.severity]
    header = " ".join((
        f"<{pri}>1",
        _timestamp(record.get("audit_timestamp")),
        _header_field(record.get("server_name"), 255),
        config.app_name,
        NIL,  # PROCID: the record may come from another process or host than the one sending it
        "audit",
        structured_data(record, config.sd_id),
    ))
    details = record.get("details")
    if not details:
        return header.encode()
    head = header.encode() + b" " + BOM
    room = max(config.max_message_bytes - len(head), 0)
    body = str(details).encode()
    if len(body) > room:
        body = body[:room].decode(errors="ignore").encode()  # cut on a character boundary
    return head + body


def structured_data(record: Mapping[str, Any], sd_id: str) -> str:
    params = "".join(
        f' {name}="{escape_param(record[key])}"' for name, key in SD_PARAMS if record.get(key) is not None
    )
    return f"[{sd_id}{params}]"


def escape_param(value: Any) -> str:
    """RFC 5424 section 6.3.3: '"', '\\' and ']' inside a PARAM-VALUE are escaped with a backslash."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _timestamp(value: Any) -> str:
    if value is None:
        return NIL
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _header_field(value: Any, limit: int) -> str:
    """Header fields are printable US-ASCII without spaces; anything else becomes '_'."""
    if not value:
        return NIL
    text = "".join(ch if "!" <= ch <= "~" else "_" for ch in str(value))
    return text[:limit]
