"""The shape docs/architecture.md promises: rooms that import each other one way only, short modules, and a core that
knows no campaign kind by name."""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"
MAX_LINES = 500


def sources(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py")
                  if "__pycache__" not in p.parts and "versions" not in p.parts)


def room(parts: list[str]) -> str:
    """The room a core module lives in: its sub-package, or the module itself for the shared top-level ones."""
    return parts[0] if (CORE / parts[0]).is_dir() else f"({parts[0]})"


def run_time_imports(tree: ast.AST) -> Iterator[ast.ImportFrom]:
    """Every `from ... import` that runs, in functions too; not those under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for node in child.orelse:
                yield from run_time_imports(node)
            continue
        if isinstance(child, ast.ImportFrom):
            yield child
        yield from run_time_imports(child)


def room_imports() -> dict[str, dict[str, str]]:
    """room -> the rooms it imports at run time -> one place that does."""
    edges: dict[str, dict[str, str]] = {}
    for path in sources(CORE):
        parts = list(path.relative_to(CORE).with_suffix("").parts)
        package = parts[:-1]
        source = room(package if parts[-1] == "__init__" and package else parts)
        for node in run_time_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if node.level:
                target = package[: len(package) - node.level + 1] + (node.module or "").split(".")
            elif (node.module or "").startswith("campaignkit.core."):
                target = node.module.split(".")[2:]  # type: ignore[union-attr]
            else:
                continue
            target = [part for part in target if part] or [node.names[0].name]
            if room(target) != source:
                edges.setdefault(source, {}).setdefault(room(target), f"{path.relative_to(ROOT)}:{node.lineno}")
    return edges


def test_rooms_import_each_other_one_way_only() -> None:
    edges = room_imports()

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        frontier = [start]
        while frontier:
            for target in edges.get(frontier.pop(), {}):
                if target not in seen:
                    seen.add(target)
                    frontier.append(target)
        return seen

    cycles = [f"{a} -> {b} ({where})" for a, targets in sorted(edges.items()) for b, where in sorted(targets.items())
              if a in reachable(b)]
    assert not cycles, "rooms import each other (move the import under TYPE_CHECKING or the code to one room):\n" + \
        "\n".join(cycles)


def test_imports_inside_functions_count_and_type_checking_ones_do_not() -> None:
    tree = ast.parse("def f():\n    from ..engine import worker\nif TYPE_CHECKING:\n    from ..web import app\n")
    assert [node.module for node in run_time_imports(tree)] == ["engine"]


def test_the_database_and_the_shared_modules_import_no_room_above_them() -> None:
    edges = room_imports()
    assert set(edges.get("db", {})) <= {"(errors)", "(files)"}
    for shared in ("(errors)", "(interfaces)", "(step)", "(hookspecs)", "(kinds)", "(settings)", "(clock)"):
        assert not {target for target in edges.get(shared, {}) if not target.startswith("(")}, shared


@pytest.mark.parametrize("path", sources(CORE, ROOT / "plugins"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_longer_than_500_lines(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by job"


def code_without_comments(path: Path) -> str:
    """The module's code without its comments (strings stay: a kind's name in a string is knowing it)."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return " ".join(token.string for token in tokens if token.type != tokenize.COMMENT)


def test_core_names_no_campaign_kind_but_the_built_in_journey() -> None:
    named = [str(path.relative_to(ROOT)) for path in sources(CORE)
             if "access_review" in code_without_comments(path) or "access-review" in code_without_comments(path)]
    assert not named, f"core knows a campaign kind by name outside comments: {named}"
