"""A worker in its own process for the recovery tests: `python tests/worker_process.py LOG [--until-idle]`.

Settings come from CAMPAIGNKIT_ environment variables. The `keylog` channel appends each idempotency key it is
called with to LOG (flushed and fsynced, so a SIGKILL loses nothing it wrote) and sleeps KEYLOG_SLEEP seconds.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from campaignkit.core import Channel, Delivery, Message, hookimpl
from campaignkit.core.engine.worker import Worker
from campaignkit.core.runtime import Runtime


class KeyLog:
    __name__ = "keylog"

    def __init__(self, path: str, sleep: float) -> None:
        self.lock = threading.Lock()
        plugin = self
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the process's life

        class KeyLogChannel(Channel):
            name = "keylog"

            def send(self, message: Message) -> Delivery:
                time.sleep(sleep)
                with plugin.lock:
                    plugin.handle.write(message.idempotency_key + "\n")
                    plugin.handle.flush()
                    os.fsync(plugin.handle.fileno())
                return Delivery()

        self.channel = KeyLogChannel

    @hookimpl
    def register_channels(self) -> list[type[Channel]]:
        return [self.channel]


def main() -> None:
    log_path, until_idle = sys.argv[1], "--until-idle" in sys.argv
    runtime = Runtime(plugins=(KeyLog(log_path, float(os.environ.get("KEYLOG_SLEEP", "0"))),))
    worker = Worker(runtime)
    if until_idle:
        worker.run_until_idle()
    else:
        worker.run_forever(threading.Event())


if __name__ == "__main__":
    main()
