"""The `campaignkit` command: one clear line and a non-zero exit on any error, never a traceback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from ..errors import CampaignkitError, DefinitionError
from .output import error_line
from .state import STATE, use_config

app = typer.Typer(
    name="campaignkit",
    help="Campaign automation: access reviews, phishing-awareness simulations and journeys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

INTERNAL_ERROR = 70


@app.callback()
def root(
    config: Annotated[Path | None, typer.Option("--config", help="campaignkit.toml to read.", dir_okay=False)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    STATE.close()
    STATE.debug = debug
    use_config(config)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def register() -> None:
    from . import admin, audit, campaign, history, roles, runs, schedule

    for module in (admin, campaign, runs, history, roles, audit, schedule):
        module.register(app)


def main(argv: list[str] | None = None) -> None:
    register()
    try:
        app(args=argv, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        error_line("error", "aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DefinitionError as exc:
        for problem in exc.problems:
            error_line("error", problem)
        sys.exit(exc.exit_code)
    except CampaignkitError as exc:
        error_line("error", str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if STATE.debug:
            raise
        error_line("internal error", f"{type(exc).__name__}: {exc} (run with --debug for details)")
        sys.exit(INTERNAL_ERROR)
    finally:
        STATE.close()
