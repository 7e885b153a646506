"""Server-rendered pages for people without an account (approvers): one renderer with the headers they all need."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi.responses import HTMLResponse

if TYPE_CHECKING:
    from ..runtime import Runtime

PAGE_HEADERS = {
    # Decision links are credentials: never leak them through Referer, caches or frames.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}


def render_page(runtime: Runtime, name: str, status: int = 200, **variables: Any) -> HTMLResponse:
    """templates/pages/<name>.html (admins may override it), autoescaped, with PAGE_HEADERS."""
    html = runtime.pages.get_template(f"pages/{name}.html").render(**variables)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
