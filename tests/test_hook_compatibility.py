"""Hook compatibility: a plugin written against any released campaignkit still loads and is called.

tests/hook_signatures.json records each release's hook signatures (argument names). The rules they enforce are
those of core/hookspecs.py and docs/plugins.md#compatibility: arguments are only added; a hook or an argument is
removed only after its spec warned about it (``warn_on_impl`` / ``warn_on_impl_args``) for a minor release.
"""

from __future__ import annotations

import inspect
import json
import logging
import types
import warnings
from pathlib import Path
from typing import Any

import pytest

from campaignkit.core import __version__, hookimpl
from campaignkit.core import hookspecs as hookspecs_module
from campaignkit.core.plugins.manager import build_plugin_manager, register_plugin
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings

RELEASED: dict[str, dict[str, list[str]]] = json.loads(
    (Path(__file__).with_name("hook_signatures.json")).read_text(encoding="utf-8"))
SPEC = f"{hookspecs_module.PROJECT}_spec"


def specs() -> dict[str, Any]:
    return {name: fn for name, fn in vars(hookspecs_module).items() if callable(fn) and hasattr(fn, SPEC)}


def arguments(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_this_version_s_signatures_are_recorded() -> None:
    version = ".".join(__version__.split(".")[:2])
    assert version in RELEASED, f"record campaignkit {version}'s hook signatures in tests/hook_signatures.json"
    current = {name: arguments(fn) for name, fn in specs().items()}
    assert RELEASED[version] == current, (
        "the hooks differ from what tests/hook_signatures.json records for this version: record the change there "
        "after checking it follows the compatibility rules (arguments only added; removals deprecated first)")


@pytest.mark.parametrize("version", sorted(RELEASED))
def test_released_hooks_and_arguments_are_still_accepted_or_deprecated(version: str) -> None:
    current = specs()
    for hook, released_arguments in RELEASED[version].items():
        assert hook in current, f"hook {hook} (in {version}) was removed: mark it warn_on_impl for a release first"
        kept = arguments(current[hook])
        for argument in released_arguments:
            assert argument in kept, (f"{hook}: argument {argument!r} (in {version}) was removed: keep it in the spec "
                                      "with warn_on_impl_args for a minor release first")
        new = kept[len([a for a in kept if a in released_arguments]):]
        assert [a for a in kept if a not in released_arguments] == new, f"{hook}: new arguments go at the end"


def old_style_plugin(version: str) -> tuple[types.ModuleType, dict[str, dict[str, Any]]]:
    """A plugin module implementing every hook of ``version`` with exactly that release's arguments."""
    module = types.ModuleType(f"written_for_{version.replace('.', '_')}")
    received: dict[str, dict[str, Any]] = {}
    for hook, names in RELEASED[version].items():
        def implementation(*args: Any, _hook: str = hook, _names: tuple[str, ...] = tuple(names)) -> Any:
            received[_hook] = dict(zip(_names, args, strict=True))
            return [] if _hook.startswith("register_") else None

        setattr(module, hook, hookimpl(_positional(implementation, names, hook)))
    return module, received


def _positional(function: Any, names: list[str], hook: str) -> Any:
    """pluggy reads an implementation's argument names from its definition: define one with the released names."""
    source = f"def {hook}({', '.join(names)}):\n    return _call({', '.join(names)})\n"
    scope: dict[str, Any] = {"_call": function}
    exec(source, scope)  # a real function with the released signature, as the plugin's author wrote it
    return scope[hook]


@pytest.mark.parametrize("version", sorted(RELEASED))
def test_a_plugin_written_for_each_release_still_loads_and_receives_its_arguments(version: str, tmp_path: Path) -> None:
    plugin, received = old_style_plugin(version)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing it uses is deprecated yet
        runtime = Runtime(Settings(var_dir=tmp_path, database_url="sqlite://"), plugins=[plugin])
    assert runtime.pm.is_registered(plugin)
    current = specs()
    for hook, names in RELEASED[version].items():
        given = {argument: object() for argument in arguments(current[hook])}  # every argument the hook has now
        others = [p for p in runtime.pm.get_plugins() if p is not plugin]
        runtime.pm.subset_hook_caller(hook, remove_plugins=others)(**given)
        assert received[hook] == {name: given[name] for name in names}, hook


def test_an_implementation_may_take_no_arguments_at_all(tmp_path: Path) -> None:
    plugin = types.ModuleType("takes_nothing")
    for hook in specs():
        result: list[Any] | None = [] if hook.startswith("register_") else None
        setattr(plugin, hook, hookimpl(_positional(lambda result=result: result, [], hook)))
    runtime = Runtime(Settings(var_dir=tmp_path, database_url="sqlite://"), plugins=[plugin])
    assert len(runtime.pm.get_hookcallers(plugin) or []) == len(specs())


class LegacySpec:
    """How a removal is announced: the argument stays in the spec, and using it warns."""

    @hookspecs_module.hookspec(warn_on_impl_args={"campaign": DeprecationWarning(
        "on_launch_closed: 'campaign' goes in campaignkit 2.0; read campaign_id")})
    def on_launch_closed(self, campaign_id: str, campaign: Any) -> None: ...


def test_a_deprecated_argument_warns_its_author_and_logs_for_the_admin(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pm = build_plugin_manager(Settings(var_dir=tmp_path, database_url="sqlite://"), load_entry_points=False)
    pm.add_hookspecs(LegacySpec)

    class OldPlugin:
        @hookimpl
        def on_launch_closed(self, campaign: Any) -> None: ...

    class NewPlugin:
        @hookimpl
        def on_launch_closed(self, campaign_id: str) -> None: ...

    with pytest.warns(DeprecationWarning, match="'campaign' goes in campaignkit 2.0"), caplog.at_level(logging.WARNING):
        register_plugin(pm, OldPlugin(), "old_plugin")
    assert "plugin 'old_plugin': on_launch_closed: 'campaign' goes in campaignkit 2.0" in caplog.text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_plugin(pm, NewPlugin(), "new_plugin")
    assert len(pm.hook.on_launch_closed.get_hookimpls()) == 2  # the old one still loads and is called
