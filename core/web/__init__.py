"""The web app: the app and its API (app.py), what guards it before any route (limits.py, rejections.py), how
uvicorn serves it (transport.py), pages (pages.py) and signed links (links.py)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app


def __getattr__(name: str) -> Any:
    # Loaded on first use: the links and pages modules are used without the web app (a worker rendering messages).
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app"]
