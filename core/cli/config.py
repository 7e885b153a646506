"""`campaignkit config reference`: every settings key of core and the plugins, as markdown."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .output import info
from .state import STATE

BUNDLED_ORIGIN = ("Generated from the settings models by `make docs` "
                  "(`campaignkit config reference --bundled --output docs/configuration.md`); do not edit by hand.")
INSTALLED_ORIGIN = ("Generated from the settings models by `campaignkit config reference`: core and the plugins "
                    "loaded here.")


def register(app: typer.Typer) -> None:
    config = typer.Typer(help="Settings: where they come from and what each key does.", no_args_is_help=True)
    config.command("reference")(reference)
    app.add_typer(config, name="config")


def reference(
    bundled: Annotated[bool, typer.Option(
        "--bundled", help="Only core and the plugins shipped with campaignkit (what docs/configuration.md holds).",
    )] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.",
                                                dir_okay=False)] = None,
) -> None:
    """Print the configuration reference: every key with its type, default and environment variable."""
    from ..plugins.config_reference import bundled_components, installed_components, render_reference

    if bundled:
        # Independent of the local settings, so docs/configuration.md is the same on every machine.
        text = render_reference(bundled_components(), BUNDLED_ORIGIN)
    else:
        # The plugins loaded under the current settings; no database is opened.
        pm = STATE.runtime(migrated=False).pm
        text = render_reference(installed_components(pm), INSTALLED_ORIGIN)
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8", newline="\n")
    info(f"wrote {output}")
