"""Process-level reliability: a worker killed mid-batch loses nothing, and workers never share a step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from campaignkit.core.clock import SystemClock
from campaignkit.core.db.schema import runs, step_records

pytestmark = pytest.mark.slow
WORKER = Path(__file__).with_name("worker_process.py")
FLOW = """
name: Recovery
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: mail}
    - {id: mail, type: send_message, config: {channel: keylog, subject: s, text: t, to: "{{ target.key }}@x.org"},
       next: split}
    - {id: split, type: random_cohort, config: {cohorts: {a: 1, b: 1}}, edges: {a: done, b: done}}
    - {id: done, type: left_campaign}
"""


class KeyLogPlugin:
    """Registers the `keylog` channel name in the test process, so the definition validates here too."""

    __name__ = "keylog"

    def __init__(self) -> None:
        from campaignkit.core import Channel, Delivery, Message, hookimpl

        class KeyLogChannel(Channel):
            name = "keylog"

            def send(self, message: Message) -> Delivery:
                raise AssertionError("the test process never sends")

        self.channel = KeyLogChannel
        self.register_channels = hookimpl(lambda: [self.channel])


def start_worker(runtime: Any, log: Path, *, lease: float, sleep: float, until_idle: bool,
                 batch: int = 50) -> subprocess.Popen[bytes]:
    """A worker process on the test runtime's database, with its audit key (every host of a deployment has it)."""
    env = {**os.environ, "CAMPAIGNKIT_DATABASE_URL": runtime.settings.database_url,
           "CAMPAIGNKIT_AUDIT_KEY": runtime.settings.audit_key.get_secret_value(),
           "CAMPAIGNKIT_WORKER__LEASE_SECONDS": str(lease),
           "CAMPAIGNKIT_WORKER__BATCH_SIZE": str(batch), "CAMPAIGNKIT_WORKER__THREADS": "4",
           "CAMPAIGNKIT_WORKER__POLL_SECONDS": "0.1", "KEYLOG_SLEEP": str(sleep),
           "CAMPAIGNKIT_VAR_DIR": str(log.parent / "var")}
    args = [sys.executable, str(WORKER), str(log)] + (["--until-idle"] if until_idle else [])
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def logged(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def ledger(runtime: Any) -> tuple[int, Counter[tuple[int, str, int]], set[str]]:
    with runtime.engine.connect() as conn:
        finished = conn.execute(select(func.count()).select_from(runs).where(runs.c.status == "completed")
                                ).scalar_one()
        rows = conn.execute(select(step_records.c.run_id, step_records.c.node_id, step_records.c.visit,
                                   step_records.c.idempotency_key)).all()
    keys = Counter((r.run_id, r.node_id, r.visit) for r in rows)
    sent = {r.idempotency_key for r in rows if r.node_id == "mail"}
    return finished, keys, sent


def launch(make_runtime: Any, harness_factory: Any, targets: int) -> Any:
    runtime = make_runtime(extra_plugins=(KeyLogPlugin(),))
    runtime.clock = SystemClock()  # the worker processes run on real time
    harness = harness_factory(runtime)
    campaign_id = harness.create(FLOW)
    harness.launch(campaign_id, harness.csv("key\n" + "".join(f"t{i}\n" for i in range(targets))))
    return runtime


@pytest.fixture
def harness_factory(actor: Any, tmp_path: Path) -> Any:
    from conftest import Harness

    return lambda runtime: Harness(runtime, actor, tmp_path)


def test_a_killed_worker_loses_nothing(make_runtime: Any, harness_factory: Any, database_url: str,
                                       tmp_path: Path) -> None:
    runtime = launch(make_runtime, harness_factory, 300)
    log = tmp_path / "keys.log"
    first = start_worker(runtime, log, lease=2, sleep=0.02, until_idle=False)
    try:
        wait_for(lambda: len(logged(log)) >= 80, 60, "the first worker to be mid-way")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    finished_at_kill, _, committed = ledger(runtime)
    seen_at_kill = set(logged(log))
    assert 0 < finished_at_kill < 300 and len(seen_at_kill) < 300  # it really died mid-campaign
    time.sleep(2.2)  # its leases expire
    second = start_worker(runtime, log, lease=2, sleep=0, until_idle=True)
    try:
        _, stderr = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, stderr.decode()[-2000:]
    finished, keys, sent = ledger(runtime)
    assert finished == 300
    assert len(keys) == 300 * 4  # every node of every run in the ledger (the unique key keeps one row each)
    calls = Counter(logged(log))
    assert set(calls) == sent and len(sent) == 300  # every send happened at least once
    repeated = {key for key, n in calls.items() if n > 1}
    # Only sends whose batch had not committed when the worker died may happen twice.
    assert repeated <= seen_at_kill - committed


@pytest.mark.parametrize("workers", [3])
def test_concurrent_workers_never_execute_the_same_step_twice(make_runtime: Any, harness_factory: Any,
                                                              database_url: str, tmp_path: Path,
                                                              workers: int) -> None:
    runtime = launch(make_runtime, harness_factory, 1000)
    log = tmp_path / "keys.log"
    procs = [start_worker(runtime, log, lease=60, sleep=0.002, until_idle=False, batch=40)
             for _ in range(workers)]
    try:
        wait_for(lambda: ledger(runtime)[0] == 1000, 120, "every run to complete")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    finished, keys, sent = ledger(runtime)
    calls = Counter(logged(log))
    assert finished == 1000 and len(sent) == 1000
    assert max(calls.values()) == 1 and set(calls) == sent  # no send executed twice
    assert len(keys) == 1000 * 4  # and no run skipped a node
