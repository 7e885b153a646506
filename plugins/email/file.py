"""file: writes each message as an RFC 5322 .eml file into an outbox folder."""

from __future__ import annotations

import hashlib
import os
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from campaignkit.core import Channel, Delivery, Message, StepError


class FileChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: Path | None = Field(default=None, description="Outbox folder; default: <var_dir>/outbox")
    sender: str = Field(default="campaignkit@localhost", description="The From address.")


class FileChannel(Channel):
    name = "file"
    Config = FileChannelConfig

    @property
    def directory(self) -> Path:
        return self.config.directory or self.runtime.settings.var_dir / "outbox"

    def send(self, message: Message) -> Delivery:
        # One file per idempotency key: a redelivered step overwrites its own message, never adds a second.
        name = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32] + ".eml"
        path = self.directory / name
        email = EmailMessage()
        email["From"] = self.config.sender
        email["To"] = message.to
        email["Subject"] = message.subject
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = make_msgid(idstring=name[:16], domain="campaignkit.local")
        email["X-Campaignkit-Key"] = message.idempotency_key
        email.set_content(message.text)
        if message.html is not None:
            email.add_alternative(message.html, subtype="html")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(bytes(email))
            os.replace(tmp, path)  # readers never see half a message
        except OSError as exc:
            raise StepError(f"outbox {self.directory}: {exc.strerror or exc}") from None
        return Delivery(message_id=email["Message-ID"], detail={"file": str(path)})
