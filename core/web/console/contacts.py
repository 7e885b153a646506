"""A contact: the target's attributes and custom fields, and its runs in every campaign."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...campaigns.queries import contact
from ...errors import NotFound
from . import Console


def router(console: Console) -> APIRouter:
    routes = APIRouter()

    @routes.get("/contacts/{key:path}")
    def contact_page(request: Request, key: str) -> Response:
        def render(session: Any) -> Response:
            try:
                found = contact(console.runtime, key)
            except NotFound as exc:
                return console.render("message", 404, session=session, message=str(exc))
            return console.render("contact", session=session, contact=found)

        return console.page(request, render)

    return routes
