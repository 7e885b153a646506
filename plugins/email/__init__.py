"""Bundled email channels: ``smtp`` and ``file`` (an outbox folder of .eml files, the embedded default)."""

from __future__ import annotations

from campaignkit.core import Channel, hookimpl

from .file import FileChannel
from .smtp import SmtpChannel


@hookimpl
def register_channels() -> list[type[Channel]]:
    return [SmtpChannel, FileChannel]
