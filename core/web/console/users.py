"""Users (admins only): every account with its role and state, and changing a role or disabling and enabling an
account, each a same-origin form with the session's CSRF token, audited as the admin (accounts/users.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...accounts.roles import GRANTS, Access, Role, parse_role
from ...accounts.sessions import Session
from ...accounts.tokens import Tokens
from ...accounts.users import Accounts
from ...errors import CampaignkitError
from ..forms import form_value
from . import Console

CHANGES = ("set-role", "disable", "enable")


def may_administer(session: Session) -> bool:
    return Access.ADMINISTER in GRANTS[session.role]


def admin_refusal(session: Session) -> str | None:
    return None if may_administer(session) else "only admins manage accounts"


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    @routes.get("/users")
    def users(request: Request) -> Response:
        def render(session: Session) -> Response:
            refusal = admin_refusal(session)
            if refusal is not None:
                return console.render("message", 403, session=session, message=refusal)
            tokens: dict[str, int] = {}
            for token in Tokens(console.runtime).list():
                if token.revoked_at is None:
                    tokens[token.user_name] = tokens.get(token.user_name, 0) + 1
            return console.render("users", session=session, users=Accounts(console.runtime).list(), tokens=tokens,
                                  roles=[str(role) for role in Role])

        return console.page(request, render)

    @routes.post("/users/{name}")
    async def change(request: Request, name: str) -> Response:
        posted = await console.posted(request, admin_refusal)
        if isinstance(posted, Response):
            return posted
        session, fields = posted
        change = form_value(fields, "change")
        if change not in CHANGES:
            return console.render("message", 404, session=session, message=f"no change {change[:40]!r}")
        accounts, actor = Accounts(console.runtime), console.actor(session, request)
        try:
            if change == "set-role":
                role = parse_role(form_value(fields, "role"))
                await run_in_threadpool(accounts.set_role, name, role, actor)
            elif change == "disable":
                await run_in_threadpool(accounts.disable, name, actor)
            else:
                await run_in_threadpool(accounts.enable, name, actor)
        except CampaignkitError as exc:
            return console.render("message", 409, session=session, message=str(exc))
        return RedirectResponse("/users", 303)

    return routes
