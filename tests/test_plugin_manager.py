"""The plugin manager: defaults, entry points, allow/block lists, duplicates, overrides, config validation."""

from __future__ import annotations

import logging
import re
from importlib.metadata import entry_points
from typing import Any

import pytest

from campaignkit.core import AuditSink, Channel, ConfigurationError, Delivery, Message, NoConfig, PluginError, hookimpl
from campaignkit.core.plugins.manager import DEFAULT_PLUGINS
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings


def channel_plugin(plugin_name: str, channel_name: str, config: type = NoConfig) -> Any:
    class Plugin:
        __name__ = plugin_name

        class TheChannel(Channel):
            name = channel_name
            Config = config

            def send(self, message: Message) -> Delivery:
                return Delivery(message_id=plugin_name)

        @hookimpl
        def register_channels(self) -> list[type[Channel]]:
            return [self.TheChannel]

    return Plugin()


def runtime(tmp_path: Any, *plugins: Any, **settings: Any) -> Runtime:
    return Runtime(Settings(var_dir=tmp_path, database_url="sqlite://", **settings), plugins=plugins)


def test_defaults_and_bundled_entry_points_load(tmp_path: Any) -> None:
    rt = runtime(tmp_path)
    names = {rt.pm.get_name(p) for p in rt.pm.get_plugins()}
    bundled = {ep.name for ep in entry_points(group="campaignkit")}
    assert {"email", "enforcement", "custom_field", "audit_sinks"} <= bundled
    assert set(DEFAULT_PLUGINS) | bundled <= names
    assert rt.registry.names("channel") == ["file", "log", "null", "smtp"]


def test_block_and_allow_lists(tmp_path: Any) -> None:
    blocked = runtime(tmp_path, plugins={"blocked": ["email"]})
    assert "smtp" not in blocked.registry.names("channel")
    only = runtime(tmp_path, plugins={"enabled": ["enforcement"]})
    assert only.registry.names("channel") == ["log", "null"]
    assert only.registry.names("enforcement action") == ["noop", "scim", "webhook"]
    assert only.registry.names("field updater") == []  # custom_field is not enabled


def test_duplicate_names_are_a_start_up_error(tmp_path: Any) -> None:
    with pytest.raises(PluginError, match="duplicate channel name 'pager': registered by both 'one' and 'two'"):
        runtime(tmp_path, channel_plugin("one", "pager"), channel_plugin("two", "pager"))
    with pytest.raises(PluginError, match="duplicate channel name 'smtp'"):
        runtime(tmp_path, channel_plugin("mine", "smtp"))  # bundled plugins are plugins like any other


def test_a_plugin_may_override_a_built_in(tmp_path: Any) -> None:
    rt = runtime(tmp_path, channel_plugin("quiet", "log"))
    assert rt.registry.channel("log", rt).send(None).message_id == "quiet"  # type: ignore[arg-type]


def test_a_hook_that_does_not_exist_is_refused(tmp_path: Any) -> None:
    class Typo:
        __name__ = "typo"

        @hookimpl
        def register_chanels(self) -> list[Any]:
            return []

    with pytest.raises(PluginError, match="typo"):
        runtime(tmp_path, Typo())


def test_plugin_config_is_validated_by_the_plugin_s_model(tmp_path: Any) -> None:
    from pydantic import BaseModel, ConfigDict

    class PagerConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")
        port: int

    plugin = channel_plugin("pager_plugin", "pager", PagerConfig)
    with pytest.raises(ConfigurationError, match=r"plugins\.config\.pager\.port: Input should be a valid integer"):
        runtime(tmp_path, plugin, plugins={"config": {"pager": {"port": "eighty"}}})
    rt = runtime(tmp_path, plugin, plugins={"config": {"pager": {"port": "80"}}})
    assert rt.registry.channel("pager", rt).config.port == 80


def test_an_unknown_audit_sink_or_its_missing_settings_stop_start_up(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"audit\.sinks: no audit sink named 'kafka'"):
        runtime(tmp_path, audit={"sinks": ["kafka"]})
    with pytest.raises(ConfigurationError, match=r"plugins\.config\.jsonl\.path"):
        runtime(tmp_path, audit={"sinks": ["jsonl"]})


def test_each_manager_is_fresh(tmp_path: Any) -> None:
    first = runtime(tmp_path, channel_plugin("once", "pager"))
    second = runtime(tmp_path)
    assert "pager" in first.registry.names("channel") and "pager" not in second.registry.names("channel")


# --- CAMPAIGNKIT_TRACE_PLUGINS -------------------------------------------------------------------------------------


class Traced:
    """Registers a channel, adds a filter, and fails as an observer: one call of each outcome to trace."""

    __name__ = "traced"

    @hookimpl
    def register_channels(self) -> list[type[Channel]]:
        return [channel_plugin("unused", "pager").TheChannel]

    @hookimpl
    def prepare_jinja_environment(self, env: Any, purpose: str) -> None:
        env.filters["shout"] = str.upper

    @hookimpl
    def on_campaign_finished(self, campaign: Any, state: str) -> None:
        raise ValueError("the dashboard is down")


def test_tracing_logs_each_hook_call_with_its_plugin_duration_and_outcome(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="campaignkit.trace")
    rt = runtime(tmp_path, Traced(), trace_plugins=True)
    rt.jinja  # noqa: B018 - builds the message environment, which calls prepare_jinja_environment
    rt.notify("on_campaign_finished", campaign={"name": "Payroll review 2031"}, state="completed")
    lines = [r.getMessage() for r in caplog.records if r.name == "campaignkit.trace"]
    ms = r"\d+\.\d{3} ms"
    assert any(re.fullmatch(rf"hook register_channels plugin=traced {ms} ok returned 1: pager", line) for line in lines)
    assert any(re.fullmatch(rf"hook register_channels plugin=email {ms} ok returned 2: smtp, file", line)
               for line in lines)
    assert any(re.fullmatch(rf"hook prepare_jinja_environment plugin=traced {ms} ok", line) for line in lines)
    assert any(re.fullmatch(rf"hook on_campaign_finished plugin=traced {ms} raised ValueError: the dashboard is down",
                            line) for line in lines)
    assert not any("Payroll review" in line for line in lines)  # arguments are data, never traced
    assert rt.jinja.filters["shout"] is str.upper  # tracing wraps the call, not what the plugin does


def test_without_the_setting_nothing_is_traced(tmp_path: Any, caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    runtime(tmp_path, Traced()).notify("on_campaign_finished", campaign={}, state="completed")
    assert not [r for r in caplog.records if r.name == "campaignkit.trace"]
    monkeypatch.setenv("CAMPAIGNKIT_TRACE_PLUGINS", "1")
    assert Settings().trace_plugins is True


def test_two_components_reading_one_settings_table_is_a_start_up_error(tmp_path: Any) -> None:
    from pydantic import BaseModel

    class SinkConfig(BaseModel):
        path: str

    class CsvSink(AuditSink):
        name = "csv"  # the bundled csv audience source reads plugins.config.csv already
        Config = SinkConfig

        def emit(self, records: Any) -> None: ...

    class Plugin:
        __name__ = "csv_sink_plugin"

        @hookimpl
        def register_audit_sinks(self) -> list[type[AuditSink]]:
            return [CsvSink]

    clash = (r"plugins\.config\.csv would configure both audit sink 'csv' \(csv_sink_plugin\) "
             r"and audience source 'csv' \(campaignkit\.core\.plugins\.builtins\)")
    with pytest.raises(PluginError, match=clash):
        runtime(tmp_path, Plugin())
    CsvSink.config_key = "csv_audit"
    rt = runtime(tmp_path, Plugin(), plugins={"config": {"csv_audit": {"path": "a.csv"}}})
    assert rt.registry.audit_sink("csv", rt).config.path == "a.csv"
