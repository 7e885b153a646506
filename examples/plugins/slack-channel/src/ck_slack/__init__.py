"""campaignkit-slack: the ``slack`` delivery channel, posting to a Slack-style incoming webhook."""

from __future__ import annotations

from campaignkit.core import Channel, hookimpl

from .channel import SlackChannel, SlackConfig

__all__ = ["SlackChannel", "SlackConfig", "register_channels"]


@hookimpl
def register_channels() -> list[type[Channel]]:
    return [SlackChannel]
