"""Whether a definition is being checked for ``campaign create`` or ``update`` (strictly), or a stored version is being
loaded to run (as it was accepted then). A check made stricter refuses new definitions without breaking the runs of
versions stored before it: a config validator asks ``strict()``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_CHECKING: ContextVar[bool] = ContextVar("campaignkit_checking_definition", default=False)


@contextmanager
def checking() -> Iterator[None]:
    """Inside: node configs are being checked for a definition someone is saving."""
    token = _CHECKING.set(True)
    try:
        yield
    finally:
        _CHECKING.reset(token)


def strict() -> bool:
    return _CHECKING.get()
