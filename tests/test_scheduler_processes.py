"""The `campaignkit scheduler` role as real processes: a restart keeps a pending launch and launches it once, and
two schedulers started by mistake against one PostgreSQL database still launch a cycle only once.

Set-up runs the CLI in-process; the schedulers are the installed console script, stopped with SIGTERM. The sync
interval is shortened through CAMPAIGNKIT_SCHEDULER__SYNC_SECONDS so that a new launch is picked up at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from typer.testing import CliRunner, Result

from campaignkit.core.cli.app import register
from campaignkit.core.db import normalise_url
from campaignkit.core.db.schema import audit_history, launches, runs
from campaignkit.core.scheduling.service import JOB_TABLE

pytestmark = pytest.mark.slow
Cli = Callable[..., Result]
TARGETS = 200
FLOW = """
name: Timed
audience: {source: csv, path: audience.csv, key: key}
workflow:
  nodes:
    - {id: start, type: entered_campaign, next: wait}
    - {id: wait, type: wait_for_event, config: {events: [go]}, next: done}
    - {id: done, type: left_campaign}
"""


def command(*args: str) -> list[str]:
    """The installed `campaignkit` script next to this interpreter; the same entry point otherwise."""
    script = Path(sys.executable).with_name("campaignkit")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from campaignkit.core.cli import main; main()", *args]


def make_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Cli:
    for key in [k for k in os.environ if k.startswith("CAMPAIGNKIT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CAMPAIGNKIT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CAMPAIGNKIT_DATABASE_URL", database_url)
    monkeypatch.setenv("CAMPAIGNKIT_CONFIG", "")
    monkeypatch.chdir(tmp_path)
    app, runner = register(), CliRunner()

    def run(*args: str) -> Result:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.stdout}\n{result.stderr}"
        return result

    return run


class Deployment:
    """A database with the `Timed` campaign created, and scheduler processes started against it."""

    def __init__(self, cli: Cli, tmp_path: Path, database_url: str) -> None:
        self.cli, self.tmp_path, self.database_url = cli, tmp_path, database_url
        self.engine: Engine = create_engine(normalise_url(database_url))
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        cli("init")
        (tmp_path / "audience.csv").write_text("key\n" + "".join(f"t{i}\n" for i in range(TARGETS)))
        (tmp_path / "timed.yaml").write_text(FLOW)
        cli("campaign", "create", str(tmp_path / "timed.yaml"))

    def start_scheduler(self) -> tuple[subprocess.Popen[bytes], Path]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNKIT_")}
        env.update({"CAMPAIGNKIT_DATABASE_URL": self.database_url, "CAMPAIGNKIT_VAR_DIR": str(self.tmp_path / "var"),
                    "CAMPAIGNKIT_SCHEDULER__SYNC_SECONDS": "0.2"})
        log = self.tmp_path / f"scheduler-{len(self.processes)}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(command("--verbose", "scheduler"), cwd=self.tmp_path, env=env,
                                       stdout=subprocess.DEVNULL, stderr=handle)
        self.processes.append((process, log))
        wait_for(lambda: "scheduler started" in log.read_text() or process.poll() is not None, 60,
                 f"{log.name} to start")
        assert process.poll() is None, log.read_text()[-3000:]
        return process, log

    def launch_in(self, seconds: int) -> tuple[int, datetime]:
        at = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
        self.cli("campaign", "launch", "Timed", "--at", at.isoformat())
        (launch,) = self.launches()
        assert launch.status == "scheduled"
        return launch.id, at

    def launches(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(launches).order_by(launches.c.id)))

    def count(self, table: Any, *where: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())

    def job_ids(self) -> set[str]:
        from sqlalchemy import column, table

        jobs = table(JOB_TABLE, column("id"))
        with self.engine.connect() as conn:
            return set(conn.execute(select(jobs.c.id)).scalars())

    def close(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.engine.dispose()


def terminate(process: subprocess.Popen[bytes], log: Path) -> tuple[int | None, str]:
    """SIGTERM, as an init system stops the role; returns its exit status and its log."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"the scheduler did not stop on SIGTERM: {log.read_text()[-3000:]}") from None
    return process.returncode, log.read_text()


def stop(process: subprocess.Popen[bytes], log: Path) -> str:
    """Stop a scheduler that must exit 0 without a traceback."""
    code, output = terminate(process, log)
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-5000:]
    return output


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Iterator[Deployment]:
    setup = Deployment(make_cli(monkeypatch, tmp_path, database_url), tmp_path, database_url)
    yield setup
    setup.close()


def assert_launched_once(deployment: Deployment, launch_id: int, at: datetime) -> None:
    (launch,) = deployment.launches()
    assert (launch.id, launch.status, launch.target_count) == (launch_id, "launched", TARGETS)
    assert launch.launched_at >= at  # not before its time
    assert deployment.count(runs) == TARGETS == deployment.count(runs, runs.c.launch_id == launch_id)
    assert deployment.count(audit_history, audit_history.c.audit_sub_type == "Workflow Started") == 1
    assert f"launch:{launch_id}" not in deployment.job_ids()  # a date job is done once it ran


def test_a_restarted_scheduler_launches_a_pending_cycle_exactly_once(deployment: Deployment) -> None:
    first, first_log = deployment.start_scheduler()
    launch_id, at = deployment.launch_in(4)
    # The running scheduler picks the new launch up into its job store at the next sync.
    wait_for(lambda: f"launch:{launch_id}" in deployment.job_ids(), 3, "the launch job to be stored")
    stop(first, first_log)
    assert datetime.now(UTC) < at, "the first scheduler was stopped too late for this test to mean anything"
    assert [launch.status for launch in deployment.launches()] == ["scheduled"] and deployment.count(runs) == 0
    assert f"launch:{launch_id}" in deployment.job_ids()  # the job outlives its process

    second, second_log = deployment.start_scheduler()
    wait_for(lambda: deployment.launches()[0].status != "scheduled", 30, "the restarted scheduler to launch")
    time.sleep(1.5)  # several sync intervals, for a second launch to show if there were one
    assert second.poll() is None
    assert_launched_once(deployment, launch_id, at)
    output = stop(second, second_log)
    assert output.count(f"launch {launch_id}: launched") == 1


@dataclass(frozen=True)
class Contest:
    """What two schedulers on one database did with one launch that came due under both."""

    launch_id: int
    at: datetime
    launches: list[Any]
    runs: int
    runs_of_launch: int
    started_records: int
    job_ids: set[str]
    alive: list[bool]  # each process still running after the launch
    syncing: list[bool]  # each one still ran its sync job after the launch
    returncodes: list[int | None]
    outputs: list[str]

    def count(self, line: str) -> int:
        return sum(output.count(line) for output in self.outputs)


@pytest.fixture(scope="module")
def contest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contest]:
    """Run the scenario once for the tests below: two schedulers, one PostgreSQL database, one launch due."""
    admin_url = os.environ.get("CAMPAIGNKIT_TEST_PG_URL")
    if not admin_url:
        pytest.fail("CAMPAIGNKIT_TEST_PG_URL is not set: PostgreSQL tests must run under CI")
    name = f"ck_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    tmp_path = tmp_path_factory.mktemp("contest")
    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            url = f"{admin_url.rpartition('/')[0]}/{name}"
            deployment = Deployment(make_cli(monkeypatch, tmp_path, url), tmp_path, url)
            try:
                pair = [deployment.start_scheduler(), deployment.start_scheduler()]
                launch_id, at = deployment.launch_in(3)
                wait_for(lambda: deployment.launches()[0].status != "scheduled", 30, "a scheduler to launch")
                time.sleep(1.5)  # both schedulers have had their chance at the job by now
                marks = [len(log.read_text()) for _, log in pair]
                time.sleep(1.0)  # five sync intervals
                syncing = ['Job "housekeeping:sync' in log.read_text()[mark:] for (_, log), mark in zip(pair, marks,
                                                                                                       strict=True)]
                alive = [process.poll() is None for process, _ in pair]
                result = Contest(
                    launch_id, at, deployment.launches(), deployment.count(runs),
                    deployment.count(runs, runs.c.launch_id == launch_id),
                    deployment.count(audit_history, audit_history.c.audit_sub_type == "Workflow Started"),
                    deployment.job_ids(), alive, syncing, [], [])
                for process, log in pair:
                    code, output = terminate(process, log)
                    result.returncodes.append(code)
                    result.outputs.append(output)
            finally:
                deployment.close()
        yield result
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_two_schedulers_on_one_database_launch_a_cycle_once(contest: Contest) -> None:
    (launch,) = contest.launches
    assert (launch.id, launch.status, launch.target_count) == (contest.launch_id, "launched", TARGETS)
    assert launch.launched_at >= contest.at
    assert contest.runs == contest.runs_of_launch == TARGETS and contest.started_records == 1
    assert f"launch:{contest.launch_id}" not in contest.job_ids
    assert contest.count(f"launch {contest.launch_id}: launched") == 1
    # Any other execution of the job (the second scheduler's, or one a sync re-created while the launch was still
    # being written) found the launch claimed and did nothing: it was neither launched again nor recorded missed.
    assert contest.count(f"launch {contest.launch_id}: missed") == 0
    assert contest.returncodes == [0, 0]


@pytest.mark.postgres
def test_a_second_scheduler_started_by_mistake_keeps_scheduling(contest: Contest) -> None:
    if contest.count(f"launch {contest.launch_id}: taken") == 0:
        pytest.skip("this time only one scheduler picked the launch job up; nothing was contested")
    assert contest.alive == [True, True]
    assert contest.syncing == [True, True], [output[-3000:] for output in contest.outputs]
    tracebacks = [output[output.index("Traceback") - 300:][:4000]
                  for output in contest.outputs if "Traceback" in output]
    assert not tracebacks, tracebacks
