"""The `campaignkit` command: one clear line and a non-zero exit on any error, never a traceback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ..errors import CampaignkitError, DefinitionError
from .output import error_line
from .state import STATE, use_config

try:  # typer >= 0.29 carries its own click: usage errors derive from TyperException, not click's classes
    from typer import TyperException as UsageProblem
except ImportError:  # pragma: no cover - older typer on top of click
    from click import ClickException as UsageProblem  # type: ignore[assignment]

INTERNAL_ERROR = 70
INTERRUPTED = 130


class CampaignkitGroup(TyperGroup):
    """Translates errors where the command runs, so `main()` and an in-process CliRunner behave the same."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, UsageProblem):
            raise  # the parser's own: usage errors, --help, typer.Exit
        except DefinitionError as exc:
            for problem in exc.problems:  # every problem, each with its file:line:col
                error_line("error", problem)
            raise typer.Exit(exc.exit_code) from None
        except CampaignkitError as exc:
            error_line("error", str(exc))
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            if STATE.debug:
                raise
            # One line: driver messages often carry a second (e.g. SQLAlchemy's "Background on this error").
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            error_line("internal error", f"{type(exc).__name__}: {first} (run with --debug for details)")
            raise typer.Exit(INTERNAL_ERROR) from None
        finally:
            STATE.close()


app = typer.Typer(
    name="campaignkit",
    cls=CampaignkitGroup,
    help="Campaign automation: access reviews, phishing-awareness simulations and journeys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


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


_registered = False


def register() -> typer.Typer:
    """Add every command group once (commands import the whole framework, so only when the CLI runs)."""
    global _registered
    if not _registered:
        from . import admin, audit, campaign, config, history, roles, runs, scaffold, schedule

        for module in (admin, config, scaffold, campaign, runs, history, roles, audit, schedule):
            module.register(app)
        _registered = True
    return app


def main(argv: list[str] | None = None) -> None:
    register()
    try:
        result = app(args=argv, prog_name="campaignkit", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        error_line("error", "interrupted")
        sys.exit(INTERRUPTED)
    except UsageProblem as exc:  # bad option, unknown command, missing argument (no_args_is_help included)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            error_line("error", str(exc))
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    # Without standalone mode the parser returns an Exit's code instead of raising it.
    sys.exit(result if isinstance(result, int) else 0)
