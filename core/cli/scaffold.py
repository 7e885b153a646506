"""`campaignkit plugin new`: start a plugin package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..plugins.scaffold import KINDS
from .output import info


def register(app: typer.Typer) -> None:
    plugin = typer.Typer(help="Write plugins: a ready-to-publish package to start from.", no_args_is_help=True)
    plugin.command("new")(new)
    app.add_typer(plugin, name="plugin")


def new(
    name: Annotated[str, typer.Argument(help="The plugin's name, e.g. acme-sms.")],
    kind: Annotated[str, typer.Option("--kind", help=f"What it adds: {', '.join(KINDS)}.")],
    directory: Annotated[Path, typer.Option("--directory", "-d", help="Where to create its folder.")] = Path("."),
) -> None:
    """Generate a plugin package: pyproject with the entry point, the plugin module, a README and passing tests."""
    from ..plugins.scaffold import generate

    folder = generate(name, kind, directory)
    info(f"created {folder}: cd {folder} && pip install -e '.[test]' && pytest")
