"""What is loaded, what is blocked, and how each component is configured: `campaignkit plugins`, the console's
Plugins page and GET /api/plugins read it here.

Settings are shown masked: a SecretStr, or a key whose name suggests a secret (password, token, secret, key, ...),
reads only "set" or "not set", and a URL shows only its scheme, host and port. The values themselves never leave
this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points, version
from pathlib import PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretBytes, SecretStr

from ..errors import ConfigurationError
from ..interfaces import NoConfig
from .manager import DEFAULT_PLUGINS, ENTRY_POINT_GROUP, collect_registrations, config_key

if TYPE_CHECKING:
    import pluggy

    from ..runtime import Runtime
    from ..settings import Settings

OWN_DISTRIBUTION = "campaignkit"
SECRET_NAME = re.compile(r"pass(word|wd|phrase)?|token|secret|key|credential|auth|cookie|session|signature", re.I)
SET, NOT_SET = "set", "not set"


def hook_spec_version() -> str:
    """The hook specs this campaignkit implements: its major.minor release (tests/hook_signatures.json keeps every
    released one; docs/plugins.md#compatibility says what may change between them)."""
    return ".".join(version(OWN_DISTRIBUTION).split(".")[:2])


@dataclass(frozen=True)
class LoadedPlugin:
    name: str
    version: str
    bundled: bool  # shipped with campaignkit (a default plugin or one of its own entry points)
    hook_specs: str  # what it was built against: campaignkit's for a bundled one, else its requirement on campaignkit
    hooks: list[str]
    registers: dict[str, list[str]]  # what it provides: kind ("channel", "step type", ...) -> names
    deprecated_hooks: list[str] = field(default_factory=list)  # implemented hooks marked for removal


@dataclass(frozen=True)
class BlockedPlugin:
    name: str
    version: str
    reason: str


def loaded_plugins(pm: pluggy.PluginManager) -> list[LoadedPlugin]:
    """Every registered plugin with its version, hooks and what it registers, by name."""
    distributions = _distributions()
    own, specs = version(OWN_DISTRIBUTION), hook_spec_version()
    registered: dict[str, dict[str, list[str]]] = {}
    for reg in collect_registrations(pm):
        registered.setdefault(reg.plugin, {}).setdefault(reg.kind, []).append(reg.name)
    found = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        dist_name, dist_version, requirement = distributions.get(name, (OWN_DISTRIBUTION, own, None))
        bundled = name in DEFAULT_PLUGINS or dist_name == OWN_DISTRIBUTION
        callers = pm.get_hookcallers(plugin) or []
        found.append(LoadedPlugin(
            name=name, version=dist_version, bundled=bundled,
            hook_specs=specs if bundled else (requirement or "not declared"),
            hooks=sorted(caller.name for caller in callers),
            registers={kind: sorted(names) for kind, names in registered.get(name, {}).items()},
            deprecated_hooks=sorted(caller.name for caller in callers
                                    if caller.spec is not None and caller.spec.warn_on_impl is not None)))
    return sorted(found, key=lambda plugin: plugin.name)


def blocked_plugins(settings: Settings) -> list[BlockedPlugin]:
    """Plugins not loaded because the settings say so: listed in ``plugins.blocked``, or installed but missing from
    a ``plugins.enabled`` list (which only entry-point plugins are subject to)."""
    distributions = _distributions()
    blocked = list(dict.fromkeys(settings.plugins.blocked))
    enabled = settings.plugins.enabled

    def installed_version(name: str) -> str:
        if name in DEFAULT_PLUGINS:
            return version(OWN_DISTRIBUTION)
        return distributions[name][1] if name in distributions else "not installed"

    found = [BlockedPlugin(name, installed_version(name), "listed in plugins.blocked") for name in blocked]
    if enabled is not None:
        found += [BlockedPlugin(name, dist_version, "not listed in plugins.enabled")
                  for name, (_, dist_version, _) in sorted(distributions.items())
                  if name not in enabled and name not in blocked]
    return found


def plugins_overview(runtime: Runtime) -> dict[str, Any]:
    """The Plugins page and GET /api/plugins: the hook specs, what is loaded, what is blocked, settings masked."""
    return {"hook_specs": hook_spec_version(), "plugins": [asdict(p) for p in loaded_plugins(runtime.pm)],
            "blocked": [asdict(p) for p in blocked_plugins(runtime.settings)],
            "settings": [asdict(c) for c in component_settings(runtime)]}


def _distributions() -> dict[str, tuple[str, str, str | None]]:
    """Installed entry-point plugins: name -> (distribution, its version, its requirement on campaignkit)."""
    found: dict[str, tuple[str, str, str | None]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        if dist is None:
            found.setdefault(ep.name, ("", "", None))
            continue
        requirement = next((req.split(";")[0].strip() for req in dist.requires or []
                            if re.match(rf"{OWN_DISTRIBUTION}\b(?![-_.\w])", req, re.I)), None)
        found.setdefault(ep.name, (dist.metadata["Name"] or "", dist.version, requirement))
    return found


@dataclass(frozen=True)
class Setting:
    key: str  # dotted below the component's table: "port", "headers.Authorization"
    value: str  # for people: masked where it is or may be a secret
    secret: bool
    configured: bool  # given in the settings, rather than the model's default


@dataclass(frozen=True)
class ComponentSettings:
    plugin: str
    kind: str
    name: str
    table: str  # plugins.config.<table>
    configured: bool  # the settings have a table for it
    settings: list[Setting]
    problem: str | None = None  # why its settings cannot be shown (a required key is missing, ...)
    enabled_sink: bool | None = None  # for an audit sink: whether audit.sinks names it


def component_settings(runtime: Runtime) -> list[ComponentSettings]:
    """Each registered component that takes settings, with its settings masked: the configured ones first, each
    group by kind and name."""
    registry, settings = runtime.registry, runtime.settings
    found = []
    for reg in registry.registrations:
        model = getattr(reg.cls, "Config", NoConfig)
        table = config_key(reg)
        configured = table in settings.plugins.config
        if reg.kind == "step type" or (model is NoConfig and not configured):
            continue  # a step type's options live in workflow files; nothing to configure
        raw = settings.plugin_config(table)
        problem, rows = None, []
        try:
            config = registry.validate_config(reg)
        except ConfigurationError:
            # The message may quote what was given; which keys are set is all that is shown.
            problem = ("invalid settings: `campaignkit config reference` lists the keys it takes" if configured
                       else "Not configured: it needs settings before anything can use it.")
            rows = [Setting(key, NOT_SET if value is None else SET, True, True) for key, value in sorted(raw.items())]
        else:
            rows = list(masked_settings(config, raw))
        found.append(ComponentSettings(
            plugin=reg.plugin, kind=reg.kind, name=reg.name, table=table, configured=configured, settings=rows,
            problem=problem, enabled_sink=reg.name in settings.audit.sinks if reg.kind == "audit sink" else None))
    # What the settings configure first: the rest shows what could be.
    return sorted(found, key=lambda item: (not item.configured, item.kind, item.name))


def masked_settings(config: Any, given: Mapping[str, Any]) -> Iterator[Setting]:
    """One row per setting of a validated config model (a nested model or table as dotted keys), masked."""
    if isinstance(config, BaseModel):
        for name in type(config).model_fields:
            yield from _rows(name, getattr(config, name), name in given, secret=bool(SECRET_NAME.search(name)))
    elif isinstance(config, Mapping):  # a plugin without a model gets its table as given
        for name, value in config.items():
            yield from _rows(str(name), value, True, secret=bool(SECRET_NAME.search(str(name))))


def _rows(key: str, value: Any, configured: bool, *, secret: bool) -> Iterator[Setting]:
    if isinstance(value, SecretStr | SecretBytes) or (secret and not isinstance(value, BaseModel | Mapping)):
        empty = value is None or (isinstance(value, SecretStr | SecretBytes) and not value.get_secret_value()) \
            or value == ""
        yield Setting(key, NOT_SET if empty else SET, True, configured)
    elif isinstance(value, BaseModel | Mapping):
        items = ((name, getattr(value, name)) for name in type(value).model_fields) if isinstance(value, BaseModel) \
            else value.items()
        rows = [row for name, item in items
                for row in _rows(f"{key}.{name}", item, configured, secret=secret or bool(SECRET_NAME.search(
                    str(name))))]
        yield from rows if rows else [Setting(key, "(empty)", False, configured)]
    elif isinstance(value, list | tuple | set | frozenset):
        shown = [_plain(item) for item in value]
        if any(text is None for text in shown):  # an item that is or holds a secret: the list is one
            yield Setting(key, SET if value else NOT_SET, True, configured)
        else:
            yield Setting(key, ", ".join(str(text) for text in shown) or "(empty)", False, configured)
    elif isinstance(value, str) and "://" not in value and SECRET_NAME.search(value):
        # A template or text that speaks of a password or a token may hold one: a secret belongs in a secret field.
        yield Setting(key, f"{SET} (not shown: it may hold a secret)", True, configured)
    else:
        yield Setting(key, _plain(value) or "", False, configured)


def _plain(value: Any) -> str | None:
    """A scalar for people; None for what must not be shown (a secret, a structure that may hold one)."""
    if value is None:
        return "(none)"
    if isinstance(value, SecretStr | SecretBytes | BaseModel | Mapping | list | tuple | set | frozenset):
        return None
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, str) and "://" in value:
        return redacted_url(value)
    return str(value)


def redacted_url(value: str) -> str:
    """Where a URL goes, and no more: its scheme, host and port. User:password@, the query and the fragment may carry
    a token, and so may the path (a chat service's incoming webhook is a secret path)."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "(set: not shown)"
    if not parts.scheme or not parts.hostname:
        return "(set: not shown)"
    rest = "/…" if parts.path.strip("/") or parts.query or parts.fragment or parts.username else ""
    return f"{parts.scheme}://{parts.hostname}{f':{port}' if port else ''}{rest}"
