"""Bad [plugins.config.slack] tables stop start-up with an error that names the key, and never echo the URL."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import TOKEN, WEBHOOK_PATH

from campaignkit.core import ConfigurationError


def test_the_channel_is_registered(ck_runtime: Any) -> None:
    assert "slack" in ck_runtime.registry.names("channel")


@pytest.mark.parametrize(("table", "key", "problem"), [
    ({"username": "Reviews"}, "plugins.config.slack.webhook_url", "Field required"),
    ({"webhook_url": f"http://hooks.example.org{WEBHOOK_PATH}"}, "plugins.config.slack.webhook_url",
     "https://"),
    ({"webhook_url": f"ftp://127.0.0.1{WEBHOOK_PATH}"}, "plugins.config.slack.webhook_url", "https://"),
    ({"webhook_url": f"https://hooks.example.org{WEBHOOK_PATH}", "timeout_seconds": 0},
     "plugins.config.slack.timeout_seconds", "greater than 0"),
    ({"webhook_url": f"https://hooks.example.org{WEBHOOK_PATH}", "icon_emoji": "shield"},
     "plugins.config.slack.icon_emoji", "pattern"),
    ({"webhook_url": f"https://hooks.example.org{WEBHOOK_PATH}", "channel": "#general"},
     "plugins.config.slack.channel", "Extra inputs"),
])
def test_bad_configuration_names_the_key(ck_make_runtime: Any, table: dict[str, Any], key: str,
                                         problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ck_make_runtime(plugins={"config": {"slack": table}})
    message = str(caught.value)
    assert key in message and problem in message
    assert TOKEN not in message


def test_missing_table_fails_when_the_channel_is_first_used(ck_runtime: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"plugins\.config\.slack\.webhook_url"):
        ck_runtime.registry.channel("slack", ck_runtime)


def test_the_url_stays_out_of_the_config_repr(ck_make_runtime: Any) -> None:
    runtime = ck_make_runtime(plugins={"config": {"slack": {"webhook_url": f"https://hooks.example.org{WEBHOOK_PATH}"}}})
    channel = runtime.registry.channel("slack", runtime)
    assert TOKEN not in repr(channel.config) and TOKEN not in str(channel.config)
