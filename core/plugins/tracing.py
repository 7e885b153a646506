"""CAMPAIGNKIT_TRACE_PLUGINS=1: log every hook call with its plugin, duration and outcome.

Each hook implementation's function is wrapped once, when the plugin manager is built, so every way core calls a
hook (pluggy's own loop, ``Runtime.notify``, the registry's one-by-one calls) is traced alike. Arguments and
return values are never logged: they carry targets' personal data and plugin configuration.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import pluggy

log = logging.getLogger("campaignkit.trace")


def trace_hook_calls(pm: pluggy.PluginManager) -> None:
    """Wrap every registered hook implementation of ``pm`` so that each call is logged at INFO."""
    log.setLevel(logging.INFO)  # asking for a trace is asking to see it, whatever the CLI's verbosity
    for hook_name, caller in vars(pm.hook).items():
        if not isinstance(caller, pluggy.HookCaller):
            continue
        for impl in caller.get_hookimpls():
            if impl.hookwrapper or impl.wrapper:
                continue  # a generator: the time of the call would be the time to create it, not to run it
            # pluggy monitors whole hook calls only (add_hookcall_monitoring); per plugin needs the function wrapped.
            impl.function = _traced(impl.function, hook_name, impl.plugin_name)  # type: ignore[misc]


def _traced(function: Callable[..., Any], hook_name: str, plugin_name: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:
            log.info("hook %s plugin=%s %.3f ms raised %s: %s", hook_name, plugin_name, _ms(started),
                     type(exc).__name__, exc)
            raise
        log.info("hook %s plugin=%s %.3f ms ok%s", hook_name, plugin_name, _ms(started), _shape(result))
        return result

    return call


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _shape(result: Any) -> str:
    """What came back, without its content: registrations name their classes, anything else only its type."""
    if result is None:
        return ""
    if isinstance(result, list | tuple):
        names = [getattr(item, "name", None) or type(item).__name__ for item in result]
        return f" returned {len(result)}: {', '.join(map(str, names))}"
    return f" returned {type(result).__name__}"
