"""examples/plugins/: one third-party-style plugin of every kind, each built into a wheel, installed into a
throwaway virtual environment and tested there with its own tests and the ck_ fixtures campaignkit ships.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from plugin_venv import Venv

from campaignkit.core.plugins.scaffold import KINDS

EXAMPLES = sorted(path for path in (Path(__file__).resolve().parent.parent / "examples" / "plugins").iterdir()
                  if (path / "pyproject.toml").exists())


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> tuple[Venv, Path]:
    """Every example plugin, copied (so that no build/ lands in the repository) and installed into one venv."""
    copies = tmp_path_factory.mktemp("examples")
    for example in EXAMPLES:
        shutil.copytree(example, copies / example.name, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                                     "__pycache__"))
    venv = Venv(tmp_path_factory.mktemp("venv") / "examples")
    venv.install(sorted(copies.iterdir()), tmp_path_factory.mktemp("wheels"))
    return venv, copies


# What a plugin can register: the kinds `campaignkit plugin new` scaffolds, campaign kinds included.
REGISTRATION_HOOKS = {kind.hook for kind in KINDS.values()}


def test_there_is_an_example_plugin_of_every_kind() -> None:
    hooks = set()
    for example in EXAMPLES:
        for source in (example / "src").rglob("*.py"):
            hooks |= {hook for hook in REGISTRATION_HOOKS if f"def {hook}(" in source.read_text()}
    assert hooks == REGISTRATION_HOOKS


@pytest.mark.parametrize("example", [path.name for path in EXAMPLES])
def test_an_example_plugin_installs_and_its_own_tests_pass(examples: tuple[Venv, Path], example: str) -> None:
    venv, copies = examples
    tests = venv.pytest(copies / example)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout and "failed" not in tests.stdout
    if os.environ.get("CI"):
        assert "skipped" not in tests.stdout, tests.stdout  # CI installs what every example needs (slapd)
