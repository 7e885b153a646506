"""Kept for plugins written for campaignkit 0.1, which imported the schema from here: it lives in core.db.schema."""

from .db.schema import *  # noqa: F403
from .db.schema import __all__  # noqa: F401
