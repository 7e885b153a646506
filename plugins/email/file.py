"""file: writes each message as an RFC 5322 .eml file into an outbox folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from campaignkit.core import Channel, Delivery, Message, StepError
from campaignkit.core.files import private_dir, write_private

from .message import build_email


class FileChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: Path | None = Field(default=None, description="Outbox folder; default: <var_dir>/outbox")
    sender: str = Field(default="campaignkit@localhost.localdomain", description="The From address.")


class FileChannel(Channel):
    name = "file"
    Config = FileChannelConfig

    @property
    def directory(self) -> Path:
        return self.config.directory or self.runtime.settings.var_dir / "outbox"

    def send(self, message: Message) -> Delivery:
        email = build_email(message, self.config.sender)
        # One file per idempotency key: a redelivered step overwrites its own message, never adds a second.
        name = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32] + ".eml"
        path = self.directory / name
        try:
            # 0700 and 0600: each message carries live decision links that act for its recipient.
            private_dir(self.directory)
            tmp = path.with_suffix(".tmp")
            write_private(tmp, bytes(email))
            os.replace(tmp, path)  # readers never see half a message; the file keeps the .tmp's mode
        except OSError as exc:
            raise StepError(f"outbox {self.directory}: {exc.strerror or exc}") from None
        return Delivery(message_id=email["Message-ID"], detail={"file": str(path)})
