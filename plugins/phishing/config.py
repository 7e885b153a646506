"""The phishing plugin's own settings (``plugins.config.phishing``): where delivery status notifications and
reported emails arrive. Kept free of heavy imports: the CLI's --help loads it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from campaignkit.core.outbound.client import is_loopback


class ImapConfig(BaseModel):
    """How to reach the IMAP mailbox that notifications or reports are delivered to."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # the input holds the password

    host: str = Field(description="IMAP server host name.")
    port: int = Field(default=993, ge=1, le=65535)
    security: Literal["tls", "starttls", "none"] = Field(
        default="tls", description="tls = implicit TLS (port 993), starttls (port 143), or none (loopback hosts only).")
    username: str
    password: SecretStr
    folder: str = Field(default="INBOX", description="The folder notifications or reports arrive in.")
    processed_folder: str | None = Field(
        default=None, description="Move handled messages here (created if missing); unset: delete them.")
    ca_file: Path | None = Field(default=None, description="PEM bundle of a private CA that signed the server.")
    timeout_seconds: float = Field(default=30, gt=0, le=300, description="Connect and each command.")

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> ImapConfig:
        if self.security == "none" and not is_loopback(self.host):
            # LOGIN without TLS sends the password readably to anyone on the path to the server.
            raise ValueError(f'security = "none" would send the IMAP password to {self.host} in clear: set security '
                             'to "tls" (port 993) or "starttls" (port 143); "none" is only for a server on a loopback '
                             "address")
        if self.security == "starttls" and self.port == 993:
            raise ValueError('port 993 is implicit TLS: use security = "tls", or port 143 for "starttls"')
        if self.processed_folder is not None and self.processed_folder == self.folder:
            raise ValueError("processed_folder must differ from folder, or every message would be handled again")
        return self


class PhishingConfig(BaseModel):
    """The phishing plugin's own settings (``plugins.config.phishing``): where notifications and reports arrive."""

    model_config = ConfigDict(extra="forbid")

    mailbox: ImapConfig | None = Field(default=None, description="The IMAP mailbox the return_path's notifications "
                                       "(and, unless report_mailbox is set, reported emails) are delivered to.")
    report_mailbox: ImapConfig | None = Field(default=None, description="A separate IMAP mailbox employees forward "
                                              "(report) suspected phishing to.")
    verp_prefix: str = Field(default="bounces", description="The local part before '+' of the return_path.")
    poll_seconds: float = Field(default=60, ge=5, le=86400, description="How often the scheduler reads them.")
