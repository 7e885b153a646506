"""The `campaignkit` command: one clear line and a non-zero exit on any error, never a traceback."""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from ..errors import CampaignkitError, DefinitionError
from .output import error_line, info
from .state import STATE, use_config

if TYPE_CHECKING:
    from ..kinds import CampaignKind

try:  # typer >= 0.29 carries its own click: usage errors derive from TyperException, not click's classes
    from typer import TyperException as UsageProblem
    from typer._click.exceptions import NoArgsIsHelpError
except ImportError:  # pragma: no cover - older typer on top of click
    from click import ClickException as UsageProblem  # type: ignore[assignment]
    from click.exceptions import NoArgsIsHelpError  # type: ignore[assignment,no-redef]

INTERNAL_ERROR = 70
INTERRUPTED = 130


class CampaignkitGroup(TyperGroup):
    """Translates errors where the command runs, so `main()` and an in-process CliRunner behave the same."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, NoArgsIsHelpError):
            raise  # the parser's own: --help, typer.Exit, a group named without a command (prints its help)
        except UsageProblem as exc:  # a bad option or argument of a command
            raise typer.Exit(usage_problem(exc)) from None
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


def usage_problem(exc: Any) -> int:
    """A usage error as one line naming the command's help; the exit code is the parser's (2)."""
    ctx = getattr(exc, "ctx", None)
    if ctx is None or isinstance(exc, NoArgsIsHelpError):
        exc.show()  # a group's help when no command was given; or an error with no command to point at
    else:
        error_line("error", f"{exc.format_message()} (see '{ctx.command_path} --help')")
    return int(exc.exit_code)


def show_version(value: bool) -> None:
    if value:
        from .. import __version__

        info(f"campaignkit {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="campaignkit",
    cls=CampaignkitGroup,
    help="Campaign automation: access reviews, phishing-awareness simulations and journeys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: flags shown as flags, and no Rich help renderer to import (a third of a second) for --help.
    rich_markup_mode=None,
)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", help="campaignkit.toml to read.", dir_okay=False)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    STATE.close()
    STATE.debug = debug
    use_config(config)
    # Every command below, a kind's own included, gets the runtime as ctx.obj(): built on first call, migrated.
    ctx.obj = STATE.runtime
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


_registered = False


def register() -> typer.Typer:
    """Add every command group once. The command modules are light: each command imports what it uses when it
    runs, so `--help` and a command that reads one table do not load the web server, the scheduler or SCIM."""
    global _registered
    if not _registered:
        from . import accounts, admin, audit, campaign, config, remote, roles, runs, scaffold, schedule, targets

        for module in (admin, config, scaffold, campaign, runs, targets, roles, audit, schedule, accounts, remote):
            module.register(app)
        for kind in kind_classes():
            mount_kind(kind)
        _registered = True
    return app


def kind_classes() -> list[type[CampaignKind]]:
    """The installed campaign kinds, without building a runtime (their commands build one when they run)."""
    from ..plugins.manager import build_plugin_manager, collect_registrations
    from ..settings import load_settings

    try:
        registrations = collect_registrations(build_plugin_manager(load_settings()))
    except CampaignkitError:
        return []  # a broken configuration or plugin: the command that runs says so, in one line
    return [reg.cls for reg in registrations if reg.kind == "campaign kind"]


def mount_kind(kind: type[CampaignKind]) -> None:
    """A kind's commands as `campaignkit <kind> ...`, and its aliases where its commands used to be."""
    commands = kind.cli()
    if commands is not None:
        app.add_typer(commands, name=kind.name.replace("_", "-"))
    for path, command in kind.cli_aliases().items():
        parent, _, name = path.rpartition(" ")
        group = app if not parent else next(
            info.typer_instance for info in app.registered_groups if info.name == parent and info.typer_instance)
        group.command(name)(command)


def main(argv: list[str] | None = None) -> None:
    register()
    try:
        sys.exit(run(argv))
    finally:
        # The process ends now: spare it the collector's walk over every object SQLAlchemy, pydantic and the
        # plugins made, at interpreter shutdown (a quarter of a small command's time; benchmarks/cli.py).
        gc.freeze()


def run(argv: list[str] | None) -> int:
    """The command's exit code."""
    try:
        result = app(args=argv, prog_name="campaignkit", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        error_line("error", "interrupted")
        return INTERRUPTED
    except UsageProblem as exc:  # bad option, unknown command, missing argument (no_args_is_help included)
        return usage_problem(exc)
    except typer.Exit as exc:
        return int(exc.exit_code)
    # Without standalone mode the parser returns an Exit's code instead of raising it.
    return result if isinstance(result, int) else 0
