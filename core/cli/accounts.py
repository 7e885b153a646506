"""user ... and token ...: the accounts people sign in with and their personal API tokens.

These commands act on the database directly, so they are for whoever administers the installation (the same person
who runs `campaignkit init` and `db upgrade`); each change is audited as that local user.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Annotated

import typer

from ..errors import CampaignkitError
from .output import Format, info, render, render_json
from .state import STATE, actor

Name = Annotated[str, typer.Argument(help="The account's name (a login, or an e-mail address).")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of "
                                                                      "standard input instead of making one.")]


def register(app: typer.Typer) -> None:
    user = typer.Typer(help="Accounts and their roles: admin, operator, auditor.", no_args_is_help=True)
    for command in (add, list_users, set_role, disable, enable, reset_password):
        user.command(command.__name__.replace("_users", "").replace("_", "-"))(command)
    app.add_typer(user, name="user")
    token = typer.Typer(help="Personal API tokens: shown once, kept hashed, revocable.", no_args_is_help=True)
    token.command("create")(create_token)
    token.command("list")(list_tokens)
    token.command("revoke")(revoke_token)
    app.add_typer(token, name="token")


def add(
    name: Name,
    role: Annotated[str, typer.Option(help="admin, operator or auditor.")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Add an account. Without --password-stdin, campaignkit makes a password and shows it once."""
    from ..accounts.roles import parse_role
    from ..accounts.users import Accounts

    made = Accounts(STATE.runtime()).add(name, parse_role(role), actor(), _stdin_password(password_stdin))
    info(f"added user {name!r} ({role.strip().lower()})")
    _show_password(name, made)


def list_users(fmt: Annotated[Format, typer.Option("--format")] = Format.table) -> None:
    """Every account: role, since when, whether disabled."""
    from ..accounts.users import Accounts

    rows = [{"name": u.name, "role": str(u.role), "created": u.created_at, "disabled": u.disabled_at,
             "password": "yes" if u.has_password else "no"} for u in Accounts(STATE.runtime()).list()]
    if fmt is Format.json:
        render_json(rows)
        return
    render(rows, ["name", "role", "created", "disabled", "password"], fmt, title="Users")


def set_role(name: Name, role: Annotated[str, typer.Argument(help="admin, operator or auditor.")]) -> None:
    """Change an account's role (the last active admin keeps theirs)."""
    from ..accounts.roles import parse_role
    from ..accounts.users import Accounts

    Accounts(STATE.runtime()).set_role(name, parse_role(role), actor())
    info(f"user {name!r} is now {role.strip().lower()}")


def disable(name: Name) -> None:
    """Disable an account: it can no longer sign in, and its tokens stop working at once."""
    from ..accounts.users import Accounts

    Accounts(STATE.runtime()).disable(name, actor())
    info(f"user {name!r} disabled")


def enable(name: Name) -> None:
    """Enable a disabled account again (its unrevoked tokens work again)."""
    from ..accounts.users import Accounts

    Accounts(STATE.runtime()).enable(name, actor())
    info(f"user {name!r} enabled")


def reset_password(name: Name, password_stdin: PasswordStdin = False) -> None:
    """Set a new password. Without --password-stdin, campaignkit makes one and shows it once."""
    from ..accounts.users import Accounts

    made = Accounts(STATE.runtime()).reset_password(name, actor(), _stdin_password(password_stdin))
    info(f"password of user {name!r} set")
    _show_password(name, made)


def create_token(
    user: Annotated[str, typer.Argument(help="The account the token acts for.")],
    name: Annotated[str, typer.Option(help="What the token is for, e.g. 'nightly export'.")],
    scope: Annotated[str, typer.Option(help="read (look only) or write (also change, within the role).")] = "read",
    expires: Annotated[str | None, typer.Option(help="Lifetime as an ISO 8601 duration, e.g. P90D; "
                                                     "default: until revoked.")] = None,
) -> None:
    """Issue a personal API token. It is printed once; campaignkit keeps only its hash."""
    from ..accounts.roles import Scope
    from ..accounts.tokens import Tokens

    try:
        checked_scope = Scope(scope.strip().lower())
    except ValueError:
        raise CampaignkitError(f"--scope {scope!r}: read or write") from None
    token, created = Tokens(STATE.runtime()).create(user, name, checked_scope, actor(), _lifetime(expires))
    info(f"token {created.id} for {user!r} ({created.scope}"
         f"{', until ' + created.expires_at.isoformat(timespec='seconds') if created.expires_at else ''}); "
         "it is shown this once:")
    typer.echo(token)


def list_tokens(
    user: Annotated[str | None, typer.Argument(help="Only this account's tokens.")] = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Tokens with their owner, scope, expiry and last use (never the tokens themselves)."""
    from ..accounts.tokens import PREFIX, Tokens

    rows = [{"id": t.id, "user": t.user_name, "name": t.name, "token": f"{PREFIX}{t.prefix}_...",
             "scope": str(t.scope), "created": t.created_at, "expires": t.expires_at, "last used": t.last_used_at,
             "revoked": t.revoked_at} for t in Tokens(STATE.runtime()).list(user)]
    if fmt is Format.json:
        render_json(rows)
        return
    render(rows, ["id", "user", "name", "token", "scope", "created", "expires", "last used", "revoked"], fmt,
           title="API tokens")


def revoke_token(token_id: Annotated[int, typer.Argument(help="The token's id (token list).")]) -> None:
    """Revoke a token: requests that use it are refused from now on."""
    from ..accounts.tokens import Tokens

    Tokens(STATE.runtime()).revoke(token_id, actor())
    info(f"token {token_id} revoked")


def _stdin_password(wanted: bool) -> str | None:
    if not wanted:
        return None
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CampaignkitError("--password-stdin: standard input gave no password")
    return password


def _show_password(name: str, made: str | None) -> None:
    if made is not None:
        info(f"password for {name!r}, shown this once:")
        typer.echo(made)


def _lifetime(expires: str | None) -> timedelta | None:
    if expires is None:
        return None
    from pydantic import TypeAdapter, ValidationError

    try:
        lifetime = TypeAdapter(timedelta).validate_python(expires)
    except ValidationError:
        raise CampaignkitError(f"--expires {expires!r}: an ISO 8601 duration such as P90D or PT12H") from None
    if lifetime <= timedelta(0):
        raise CampaignkitError(f"--expires {expires!r}: must be positive")
    return lifetime
