"""Plugins (admins only): the hook specs, what is loaded and what each plugin provides, what the settings block, and
each component's settings with every secret masked (plugins/listing.py, as GET /api/plugins). Plugin settings are
the admin's part of the installation, so the whole page is theirs; `campaignkit plugins` lists the plugins on the
host."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...accounts.sessions import Session
from ...plugins.listing import plugins_overview
from . import Console
from .users import may_administer


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    @routes.get("/plugins")
    def plugins(request: Request) -> Response:
        def render(session: Session) -> Response:
            if not may_administer(session):
                return console.render("message", 403, session=session,
                                      message="only admins see the plugins and their settings")
            return console.render("plugins", session=session, **plugins_overview(console.runtime))

        return console.page(request, render)

    return routes
