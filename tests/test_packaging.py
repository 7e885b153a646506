"""The distribution: pyproject.toml declares every package, the wheel builds without a warning, and it carries the
layout campaignkit runs from (core/ as campaignkit.core, plugins/x as campaignkit.plugins.x, templates/ as data)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
NOT_SHIPPED = {".venv", ".git", "build", "dist", "var", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def test_every_package_folder_is_declared() -> None:
    found = {".".join([name, *init.parent.relative_to(ROOT / folder).parts])
             for name, folder in SETUPTOOLS["package-dir"].items() for init in (ROOT / folder).rglob("__init__.py")}
    assert found == set(SETUPTOOLS["packages"])


@pytest.mark.slow
def test_the_wheel_builds_without_warnings_and_carries_code_and_templates(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=lambda _, names: [n for n in names
                                                           if n in NOT_SHIPPED or n.endswith(".egg-info")])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # its own note, not ours
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
                           cwd=source, env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    output = built.stdout + built.stderr
    assert "warning" not in output.lower() and "deprecat" not in output.lower(), output
    [wheel] = tmp_path.glob("campaignkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"campaignkit"}
    templates = {f"campaignkit/templates/{p.relative_to(ROOT / 'templates').as_posix()}"
                 for p in (ROOT / "templates").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert templates <= names
    kind = ROOT / "plugins" / "access_review" / "templates"
    assert {f"campaignkit/plugins/access_review/templates/{p.relative_to(kind).as_posix()}"
            for p in kind.rglob("*") if p.is_file()} <= names  # a kind's own templates travel with it
    assert {"campaignkit/core/db/migrations/script.py.mako",
            "campaignkit/core/db/migrations/versions/0001_initial_schema.py",
            "campaignkit/plugins/enforcement/scim_client.py", "campaignkit/core/cli/app.py"} <= names
