"""Bundled email channels: ``file`` (an outbox folder of .eml files, the embedded default)."""

from __future__ import annotations

from campaignkit.core import Channel, hookimpl

from .file import FileChannel


@hookimpl
def register_channels() -> list[type[Channel]]:
    return [FileChannel]
