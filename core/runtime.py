"""The assembled framework: settings, database, plugins, templates and clock, shared by every role."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
import pluggy
from sqlalchemy import Engine

from .audit.keys import AuditKeys, keyed_engine
from .clock import Clock, SystemClock
from .db import make_engine
from .errors import ConfigurationError
from .kinds import CampaignKind
from .plugins.manager import Registry, build_plugin_manager, collect_registrations
from .settings import Settings, load_settings
from .templating import make_environment, undeclared_variables

log = logging.getLogger(__name__)


class Runtime:
    """Build one per process (or per test); nothing here loads at import time."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        plugins: Iterable[Any] = (),
        load_entry_points: bool = True,
        engine: Engine | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.clock: Clock = clock or SystemClock()
        self.pm: pluggy.PluginManager = build_plugin_manager(
            self.settings, extra_plugins=plugins, load_entry_points=load_entry_points
        )
        self.registry = Registry(collect_registrations(self.pm), self.settings)
        self.registry.validate_all_configured()
        self._check_audit_sinks()
        self._engine = engine
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}"

    @cached_property
    def engine(self) -> Engine:
        engine = self._engine or make_engine(self.settings.effective_database_url)
        if self.settings.audit_key is None:
            # Reads and migrations work (init creates the key); writing an audit record refuses with MISSING_KEY.
            return engine
        return keyed_engine(engine, self.audit_keys)  # how append finds the key: see core/audit/keys.py

    @cached_property
    def audit_keys(self) -> AuditKeys:
        """The audit keys; a ConfigurationError naming audit_key when it is not set (roles check it at start)."""
        return AuditKeys.from_settings(self.settings)

    @cached_property
    def jinja(self) -> jinja2.Environment:
        """The sandboxed environment for messages and conditions, after plugins prepared it."""
        return make_environment(
            self.template_folders,
            lambda env: self.pm.hook.prepare_jinja_environment(env=env, purpose="message"),
        )

    @cached_property
    def pages(self) -> jinja2.Environment:
        return make_environment(
            self.template_folders,
            lambda env: self.pm.hook.prepare_jinja_environment(env=env, purpose="page"),
        )

    @property
    def template_folders(self) -> list[Path]:
        """Admins' template_dirs first (they override anything), then each kind's own; core's come last."""
        kinds = [folder for reg in self.registry.registrations
                 if reg.kind == "campaign kind" and (folder := getattr(reg.cls, "template_dir", None)) is not None]
        return [*self.settings.template_dirs, *kinds]

    def _check_audit_sinks(self) -> None:
        known = set(self.registry.names("audit sink")) | {"database"}
        for name in self.settings.audit.sinks:
            if name not in known:
                raise ConfigurationError(
                    f"audit.sinks: no audit sink named {name!r} (known: {', '.join(sorted(known))})")
            if name != "database":  # an enabled sink's settings are checked now, not at its first dispatch
                self.registry.validate_config(self.registry.registration("audit sink", name))

    def kind(self, name: str) -> CampaignKind:
        """The campaign kind a definition's ``kind:`` names; one that no installed plugin registers is an error."""
        if not self.registry.has("campaign kind", name):
            known = ", ".join(self.registry.names("campaign kind"))
            raise ConfigurationError(f"no campaign kind {name!r} is installed (known: {known})")
        return self.registry.campaign_kind(name, self)

    @cached_property
    def kinds(self) -> dict[str, CampaignKind]:
        """Every installed campaign kind by name."""
        return {name: self.kind(name) for name in self.registry.names("campaign kind")}

    def undeclared_template_variables(self, source: str, known: frozenset[str] = frozenset()) -> set[str]:
        """Top-level names ``source`` uses that neither the engine nor ``known`` (a kind's own) provide."""
        return undeclared_variables(self.jinja, source) - known

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook on every plugin separately, so one that raises cannot stop the others."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception:
                log.exception("plugin %r failed in %s; continuing", impl.plugin_name, hook_name)

    def close(self) -> None:
        self.registry.close()
        if self._engine is None and "engine" in self.__dict__:
            self.engine.dispose()
