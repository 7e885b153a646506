"""The console's sign-in for a kind's own console routes (WebContext.console, the kinds.ConsoleGate protocol): the same
session, role check, same-origin form and CSRF token as core's console pages, and pages in the console's frame."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from ...accounts.sessions import Session
from ...kinds import ConsolePerson
from ..pages import PAGE_HEADERS
from . import Console
from .actions import operator_refusal


class KindConsole:
    """A ConsoleGate over the console's own Console."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def page(self, request: Request, render: Callable[[ConsolePerson], Response], *,
             operate: bool = False) -> Response:
        def signed_in(session: Session) -> Response:
            person = self.console.person(session, request)
            refusal = operator_refusal(session) if operate else None
            if refusal is not None:
                return self.render(person, "console/message.html", 403, message=refusal)
            return render(person)

        return self.console.page(request, signed_in)

    async def posted(self, request: Request, *, operate: bool = True,
                     ) -> tuple[ConsolePerson, Mapping[str, list[str]]] | Response:
        posted = await self.console.posted(request, operator_refusal if operate else lambda _: None)
        if isinstance(posted, Response):
            return posted
        session, fields = posted
        return self.console.person(session, request), fields

    def render(self, person: ConsolePerson, template: str, status_code: int = 200, /,
               **variables: Any) -> Response:
        html = self.console.runtime.pages.get_template(template).render({**variables, "session": person})
        return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
