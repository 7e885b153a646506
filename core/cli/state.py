"""What every command shares: the runtime, built once and only when a command needs it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CampaignkitError

if TYPE_CHECKING:
    from ..audit import Actor
    from ..runtime import Runtime


@dataclass
class State:
    debug: bool = False
    _runtime: Runtime | None = field(default=None, repr=False)

    def runtime(self, *, migrated: bool = True) -> Runtime:
        # Imported here, as in every command: the framework loads only for a command that uses it.
        from ..db.migrate import is_up_to_date
        from ..runtime import Runtime
        from ..settings import load_settings

        if self._runtime is None:
            self._runtime = Runtime(load_settings())
        if migrated and not is_up_to_date(self._runtime.engine):
            raise CampaignkitError("the database is not initialised or is out of date: run `campaignkit init`")
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None


STATE = State()


def actor() -> Actor:
    from ..audit import Actor

    return Actor.local_user()


def use_config(path: Path | None) -> None:
    if path is not None:
        os.environ["CAMPAIGNKIT_CONFIG"] = str(path)
