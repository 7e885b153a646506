"""The campaignkit command run in-process (Typer's CliRunner) against a test database, as a user would type it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from campaignkit.core.cli.app import register

Cli = Callable[..., Result]


def make_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Cli:
    """Environment, working folder and settings of a fresh user; `run(*args, code=0)` asserts the exit code."""
    for key in [k for k in os.environ if k.startswith("CAMPAIGNKIT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CAMPAIGNKIT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CAMPAIGNKIT_DATABASE_URL", database_url)
    # `--config` writes CAMPAIGNKIT_CONFIG into os.environ; registering it here makes monkeypatch undo that.
    monkeypatch.setenv("CAMPAIGNKIT_CONFIG", "")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    app = register()
    runner = CliRunner()

    def run(*args: str, code: int = 0, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        result = runner.invoke(app, list(args), env=env, input=input)  # input: what is typed at prompts
        detail = f"{result.stdout}\n{result.stderr}\n{result.exception}"
        assert result.exit_code == code, f"exit {result.exit_code}: {detail}"
        assert "Traceback" not in result.stdout + result.stderr
        if code not in (0, 70):
            assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
        return result

    return run


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)
