"""Set-up and introspection: init, db upgrade, schema, plugins."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app_role import db_app_role
from .output import Format, error_line, info, render, render_json
from .state import STATE, actor

if TYPE_CHECKING:
    import pluggy

# The shared api_token is no longer made: people and scripts use personal tokens (`token create`); an existing one
# still reads, as documented in docs/accounts.md.
SECRET_FILES = ("secret_key", "audit_key")


def register(app: typer.Typer) -> None:
    app.command()(init)
    db = typer.Typer(help="Database migrations and roles.", no_args_is_help=True)
    db.command("upgrade")(db_upgrade)
    db.command("app-role")(db_app_role)
    app.add_typer(db, name="db")
    app.command()(schema)
    app.command()(plugins)


def init(
    admin: Annotated[str, typer.Option(help="The first admin's name, made (with a password shown once) when the "
                                            "database has no account yet.")] = "admin",
) -> None:
    """Create the var folder and its secrets, bring the database schema up to date, and make the first admin."""
    import secrets

    from ..db.migrate import current_revision, upgrade
    from ..files import open_private, private_dir
    from ..settings import default_secrets_dir

    runtime = STATE.runtime(migrated=False)
    var_dir = private_dir(runtime.settings.var_dir)
    if var_dir.stat().st_mode & 0o077:
        # Created by an older version or by hand: not changed here, var_dir may be a folder shared on purpose.
        error_line("warning", f"{var_dir} is open to other users (mode {var_dir.stat().st_mode & 0o777:o}); it "
                              f"holds the database and the outbox's live links: chmod 700 {var_dir}")
    # The var_dir the settings have, wherever it was set: the secrets land where the next start reads them.
    secrets_dir = private_dir(default_secrets_dir(runtime.settings.var_dir))
    created = False
    for name in SECRET_FILES:
        path = secrets_dir / name
        if not path.exists():
            # Written once, readable only by the owner, never printed.
            fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            info(f"created {path}")
            created = True
    upgrade(runtime.engine)
    info(f"database ready at revision {current_revision(runtime.engine)} ({_safe_url(runtime)})")
    if created:  # the settings were read before the secrets existed: read them again (the audit key signs records)
        STATE.close()
    _first_admin(admin)


def _first_admin(name: str) -> None:
    from ..accounts.roles import Role
    from ..accounts.users import Accounts

    runtime = STATE.runtime()
    accounts = Accounts(runtime)
    if accounts.any():
        return
    password = accounts.add(name, Role.ADMIN, actor())
    console = runtime.settings.web.base_url.rstrip("/") + "/"
    info(f"created the first admin, {name!r}: sign in at {console} (`campaignkit serve`) with this password, shown "
         f"this once (`campaignkit user reset-password {name}` sets a new one):")
    typer.echo(password)
    info(f"API: `campaignkit token create {name} --name my-script --scope write` prints a bearer token")


def db_upgrade() -> None:
    """Apply pending migrations."""
    from ..db.migrate import current_revision, upgrade

    runtime = STATE.runtime(migrated=False)
    before = current_revision(runtime.engine)
    upgrade(runtime.engine)
    after = current_revision(runtime.engine)
    info(f"database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))


def schema() -> None:
    """Print the JSON Schema of campaign definition files."""
    from ..definitions.workflow import CampaignDefinition

    sys.stdout.write(json.dumps(CampaignDefinition.model_json_schema(), indent=2) + "\n")


def plugins(
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json")] = Format.table,
    hooks: Annotated[bool, typer.Option("--hooks", help="List hooks with their implementations in call order")]
    = False,
) -> None:
    """List loaded plugins: version, hooks implemented and the names each registers."""
    from dataclasses import asdict

    import pluggy

    from ..plugins.listing import blocked_plugins, loaded_plugins
    from ..plugins.manager import KINDS

    runtime = STATE.runtime(migrated=False)
    pm = runtime.pm
    if hooks:
        callers = sorted((name, caller) for name, caller in vars(pm.hook).items()
                         if isinstance(caller, pluggy.HookCaller))
        hook_rows: list[dict[str, Any]] = [
            {"hook": name, "implementations": [_impl_row(impl) for impl in reversed(caller.get_hookimpls())]}
            for name, caller in callers]
        if fmt is Format.json:
            render_json(hook_rows)
        else:
            render([{"hook": r["hook"], "implementations (call order)": ", ".join(
                        i["plugin"] + "".join(f" ({q})" for q in i["qualifiers"]) for i in r["implementations"])}
                    for r in hook_rows], ["hook", "implementations (call order)"], fmt)
        return
    rows = [asdict(plugin) for plugin in loaded_plugins(pm)]
    blocked = [plugin.name for plugin in blocked_plugins(runtime.settings)]
    if fmt is Format.json:
        render_json({"plugins": rows, "blocked": blocked, "kinds": list(KINDS.values())})
        return
    flat = [{**r, "hooks": ", ".join(r["hooks"]),
             "registers": "; ".join(f"{k}: {', '.join(v)}" for k, v in r["registers"].items())} for r in rows]
    render(flat, ["name", "version", "hooks", "registers"], fmt, title="Loaded plugins")


def _impl_row(impl: pluggy.HookImpl) -> dict[str, Any]:
    """One implementation of a hook: its plugin and what decides its place in the call order."""
    qualifiers = [q for q in ("tryfirst", "trylast", "wrapper", "hookwrapper") if getattr(impl, q)]
    return {"plugin": impl.plugin_name, "qualifiers": qualifiers}


def _safe_url(runtime: Any) -> str:
    from sqlalchemy.engine import make_url

    return make_url(runtime.settings.effective_database_url).render_as_string(hide_password=True)


