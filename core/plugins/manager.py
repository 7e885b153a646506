"""The plugin manager factory and the registry of what plugins registered."""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy
from pydantic import ValidationError

from .. import hookspecs
from ..errors import ConfigurationError, PluginError
from ..interfaces import (
    AudienceSource,
    AuditSink,
    Channel,
    Component,
    EnforcementAction,
    FieldUpdater,
    HitDetector,
    NoConfig,
    TrainingProvider,
)
from ..kinds import CampaignKind
from ..settings import Settings, describe_validation_error
from ..step import StepType
from .tracing import trace_hook_calls

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "campaignkit"

# Built-in behaviour is itself a plugin; a third-party plugin may override anything registered here.
DEFAULT_PLUGINS = (
    "campaignkit.core.engine.steps",
    "campaignkit.core.plugins.builtins",
)

# register hook -> (what it registers, in words, for messages and listings)
KINDS: dict[str, str] = {
    "register_step_types": "step type",
    "register_channels": "channel",
    "register_enforcement_actions": "enforcement action",
    "register_field_updaters": "field updater",
    "register_audit_sinks": "audit sink",
    "register_audience_sources": "audience source",
    "register_campaign_kinds": "campaign kind",
    "register_hit_detectors": "hit detector",
    "register_training_providers": "training provider",
}


def build_plugin_manager(
    settings: Settings,
    *,
    extra_plugins: Iterable[Any] = (),
    load_entry_points: bool = True,
) -> pluggy.PluginManager:
    """A fresh manager: specs, default plugins, entry-point plugins filtered by settings, then extras."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = set(settings.plugins.blocked)
    enabled = set(settings.plugins.enabled) if settings.plugins.enabled is not None else None
    for module_name in DEFAULT_PLUGINS:
        if module_name not in blocked:
            register_plugin(pm, importlib.import_module(module_name), module_name)
    if load_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in blocked or (enabled is not None and ep.name not in enabled):
                pm.set_blocked(ep.name)
                continue
            if pm.has_plugin(ep.name):
                continue  # the same distribution seen twice on sys.path
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from None
            register_plugin(pm, plugin, ep.name)
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        if pm.is_blocked(name) or name in blocked or pm.is_registered(plugin):
            continue  # blocked, or installed and already loaded through its entry point
        register_plugin(pm, plugin, name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        # pluggy names the hook in its message; the plugin object's repr adds nothing for the reader.
        problem = str(exc).split(" in plugin ")[0]
        raise PluginError(f"plugin {name!r}: {problem} (see `campaignkit plugins --hooks` for the hooks)") from None
    if settings.trace_plugins:
        trace_hook_calls(pm)
    return pm


def register_plugin(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    """Register one plugin; a deprecated hook or argument it uses is logged with its name, then warned as usual.

    pluggy warns (spec ``warn_on_impl`` / ``warn_on_impl_args``) pointing at the implementation, and Python hides
    DeprecationWarnings outside ``__main__``: the log line is what an admin sees, the warning what a plugin's own
    test run shows its author.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm.register(plugin, name=name)
    for warning in caught:
        log.warning("plugin %r: %s (%s:%s)", name, warning.message, warning.filename, warning.lineno)
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


C = TypeVar("C", bound=Component)


@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    cls: type
    plugin: str


def collect_registrations(pm: pluggy.PluginManager) -> list[Registration]:
    """Every registered class with the plugin that registered it; duplicate names are an error."""
    found: list[Registration] = []
    seen: dict[tuple[str, str], Registration] = {}
    for hook_name, kind in KINDS.items():
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            try:
                classes = impl.function() or []
            except Exception as exc:
                raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook_name}: {exc}") from None
            for cls in classes:
                name = getattr(cls, "name", None)
                if not isinstance(name, str) or not name:
                    raise PluginError(f"plugin {impl.plugin_name!r} registered a {kind} without a name: {cls!r}")
                reg = Registration(kind, name, cls, impl.plugin_name)
                previous = seen.get((kind, name))
                if previous is not None:
                    if _is_default(previous.plugin) == _is_default(impl.plugin_name):
                        raise PluginError(
                            f"duplicate {kind} name {name!r}: registered by both "
                            f"{previous.plugin!r} and {impl.plugin_name!r}"
                        )
                    if _is_default(impl.plugin_name):
                        continue  # a plugin overrides the built-in of the same name
                    found.remove(previous)
                seen[(kind, name)] = reg
                found.append(reg)
    return found


def config_key(reg: Registration) -> str:
    """The table under plugins.config that configures a registered component (step types have none)."""
    settings_key = getattr(reg.cls, "settings_key", None)
    return settings_key() if callable(settings_key) else reg.name


def _takes_no_config(reg: Registration) -> bool:
    return getattr(reg.cls, "Config", NoConfig) is NoConfig


def _is_default(plugin_name: str) -> bool:
    return plugin_name in DEFAULT_PLUGINS


class Registry:
    """Registered classes by kind and name; components are built lazily with their validated config."""

    def __init__(self, registrations: list[Registration], settings: Settings) -> None:
        self.registrations = registrations
        self.settings = settings
        self._by_kind: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS.values()}
        for reg in registrations:
            self._by_kind[reg.kind][reg.name] = reg
        self._instances: dict[tuple[str, str], Any] = {}
        self._check_shared_config_tables()
        self._check_plugin_config_keys()

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def has(self, kind: str, name: str) -> bool:
        return name in self._by_kind[kind]

    def step_type(self, name: str) -> StepType:
        key = ("step type", name)
        if key not in self._instances:
            reg = self._lookup("step type", name)
            self._instances[key] = reg.cls()
        return self._instances[key]

    def component(self, kind: str, name: str, base: type[C], runtime: Runtime) -> C:
        key = (kind, name)
        if key not in self._instances:
            reg = self._lookup(kind, name)
            config = self.validate_config(reg)
            instance = reg.cls(config, runtime)
            if not isinstance(instance, base):
                raise PluginError(f"{kind} {name!r} from {reg.plugin!r} is not a {base.__name__}")
            self._instances[key] = instance
        return self._instances[key]

    def channel(self, name: str, runtime: Runtime) -> Channel:
        return self.component("channel", name, Channel, runtime)

    def enforcement_action(self, name: str, runtime: Runtime) -> EnforcementAction:
        return self.component("enforcement action", name, EnforcementAction, runtime)

    def field_updater(self, name: str, runtime: Runtime) -> FieldUpdater:
        return self.component("field updater", name, FieldUpdater, runtime)

    def audit_sink(self, name: str, runtime: Runtime) -> AuditSink:
        return self.component("audit sink", name, AuditSink, runtime)

    def audience_source(self, name: str, runtime: Runtime) -> AudienceSource:
        return self.component("audience source", name, AudienceSource, runtime)

    def hit_detectors(self, runtime: Runtime) -> list[HitDetector]:
        return [self.component("hit detector", name, HitDetector, runtime) for name in self.names("hit detector")]

    def training_provider(self, name: str, runtime: Runtime) -> TrainingProvider:
        return self.component("training provider", name, TrainingProvider, runtime)

    def campaign_kind(self, name: str, runtime: Runtime) -> CampaignKind:
        return self.component("campaign kind", name, CampaignKind, runtime)

    def require(self, kind: str, name: str) -> None:
        """The component a definition names exists and its settings are valid: found when the campaign is created,
        not at the first run that reaches it (where a missing table would only show as retries)."""
        if not self.has(kind, name):
            known = ", ".join(self.names(kind)) or "none"
            raise ConfigurationError(f"no {kind} named {name!r} is registered (known: {known})")
        self.validate_config(self.registration(kind, name))

    def validate_config(self, reg: Registration) -> Any:
        model = getattr(reg.cls, "Config", None)
        key = config_key(reg)
        raw = self.settings.plugin_config(key)
        if model is None:
            return raw
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            detail = describe_validation_error(exc, prefix=f"plugins.config.{key}")
            raise ConfigurationError(f"invalid configuration for {reg.kind} {reg.name!r}: {detail}") from None

    def validate_all_configured(self) -> None:
        """Validate every configured plugin table at start-up rather than at first use."""
        for reg in self.registrations:
            if config_key(reg) in self.settings.plugins.config:
                self.validate_config(reg)

    def close(self) -> None:
        for instance in self._instances.values():
            close = getattr(instance, "close", None)
            if close is not None and isinstance(instance, Component):
                try:
                    close()
                except Exception:
                    log.exception("closing %s failed", type(instance).__name__)
        self._instances.clear()

    def registration(self, kind: str, name: str) -> Registration:
        return self._lookup(kind, name)

    def _lookup(self, kind: str, name: str) -> Registration:
        try:
            return self._by_kind[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "none"
            raise ConfigurationError(f"no {kind} named {name!r} is registered (known: {known})") from None

    def _check_shared_config_tables(self) -> None:
        """Two components reading one settings table would each reject the other's keys: a start-up error."""
        readers: dict[str, Registration] = {}
        for reg in self.registrations:
            if reg.kind == "step type":
                continue  # configured per node in workflows, not by a settings table
            first = readers.setdefault(config_key(reg), reg)
            if first is not reg and not (_takes_no_config(first) and _takes_no_config(reg)):
                raise PluginError(
                    f"plugins.config.{config_key(reg)} would configure both {first.kind} {first.name!r} "
                    f"({first.plugin}) and {reg.kind} {reg.name!r} ({reg.plugin}): give one of them its own "
                    "table with config_key")

    def _check_plugin_config_keys(self) -> None:
        registered = {config_key(reg) for reg in self.registrations}
        for name in self.settings.plugins.config:
            if name not in registered:
                # Not an error: the table may belong to a plugin that is blocked for now.
                log.warning("plugins.config.%s: no loaded plugin registers anything named %r", name, name)
