"""docs/plugins.md stays true: a section per hook with the hookspec's exact signature, an example that loads as a
plugin, and the fixture table listing every ck_ fixture campaignkit ships."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path
from typing import Any

import pytest

from campaignkit.core import hookspecs as hookspecs_module
from campaignkit.core import testing
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
SPECS = {name: fn for name, fn in vars(hookspecs_module).items()
         if callable(fn) and hasattr(fn, f"{hookspecs_module.PROJECT}_spec")}
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def declared(fn: Any) -> str:
    """The hookspec's signature as written in core/hookspecs.py (its annotations are strings there)."""
    annotations = fn.__annotations__
    arguments = ", ".join(f"{name}: {annotations[name]}" for name in inspect.signature(fn).parameters)
    return f"def {fn.__name__}({arguments}) -> {annotations['return']}: ..."


def hook_sections() -> dict[str, str]:
    text = GUIDE.read_text(encoding="utf-8")
    reference = text.split("\n## Hook reference\n", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### `(\w+)`\n", reference, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_hook_has_a_section_and_every_section_a_hook() -> None:
    assert sorted(hook_sections()) == sorted(SPECS), "docs/plugins.md#hook-reference: one section per hookspec"


@pytest.mark.parametrize("hook", sorted(SPECS))
def test_a_hook_s_section_gives_its_exact_signature_and_says_when_it_fires(hook: str) -> None:
    section = hook_sections()[hook]
    blocks = PYTHON_BLOCK.findall(section)
    assert blocks and blocks[0].strip() == declared(SPECS[hook]), f"{hook}: the signature differs from the hookspec"
    for heading in ("**When it fires:**", "**Arguments:**", "**Returns:**", "**Example:**"):
        assert heading in section, f"{hook}: no {heading}"
    for argument in inspect.signature(SPECS[hook]).parameters:
        assert f"- `{argument}`:" in section, f"{hook}: argument {argument} is not described"


@pytest.mark.parametrize("hook", sorted(SPECS))
def test_a_hook_s_example_loads_as_a_plugin_and_implements_it(hook: str, tmp_path: Path) -> None:
    example = PYTHON_BLOCK.findall(hook_sections()[hook])[1]
    plugin = types.ModuleType(f"example_{hook}")
    exec(compile(example, f"docs/plugins.md#{hook}", "exec"), plugin.__dict__)
    runtime = Runtime(Settings(var_dir=tmp_path, database_url="sqlite://"), plugins=[plugin], load_entry_points=False)
    assert [impl.plugin for impl in getattr(runtime.pm.hook, hook).get_hookimpls()].count(plugin) == 1


def test_the_fixture_table_lists_every_fixture_campaignkit_ships() -> None:
    shipped = {name for name, value in vars(testing).items() if name.startswith("ck_") and callable(value)}
    documented = set(re.findall(r"^\| `(ck_\w+)` \|", GUIDE.read_text(encoding="utf-8"), re.MULTILINE))
    assert shipped and documented == shipped
