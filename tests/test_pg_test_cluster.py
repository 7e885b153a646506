"""scripts/pg-test-cluster.sh: each checkout its own throwaway PostgreSQL, and nothing deleted that it did not make.

Runs the script itself, as `eval "$(scripts/pg-test-cluster.sh start)"` would; skipped without PostgreSQL's server.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pg-test-cluster.sh"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not glob.glob("/usr/lib/postgresql/*/bin/initdb"), reason="PostgreSQL's server is not "
                       "installed (apt-get install postgresql)"),
]


def script(command: str, checkout: Path, **env: str) -> subprocess.CompletedProcess[str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGNKIT_PG_")} | env
    return subprocess.run([str(checkout / "scripts" / SCRIPT.name), command], env=variables, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def checkouts() -> Iterator[list[Path]]:
    """Two checkouts of the script. Under /tmp, not tmp_path: as root the cluster runs as `postgres`, which cannot
    enter pytest's private folders."""
    made = [Path(f"/tmp/ck-checkout-{uuid.uuid4().hex[:8]}") for _ in range(2)]
    for checkout in made:
        (checkout / "scripts").mkdir(parents=True)
        shutil.copy2(SCRIPT, checkout / "scripts" / SCRIPT.name)
    try:
        yield made
    finally:
        for checkout in made:
            script("stop", checkout)
            shutil.rmtree(checkout, ignore_errors=True)


def started(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"export CAMPAIGNKIT_TEST_PG_URL=(postgresql\+psycopg://postgres@127\.0\.0\.1:\d+/postgres)\n",
                         result.stdout)
    assert match, result.stdout
    return match.group(1)


def answers(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("select 1")).scalar() == 1
    finally:
        engine.dispose()


def test_two_checkouts_get_their_own_cluster_and_stop_only_their_own(checkouts: list[Path]) -> None:
    first, second = (started(script("start", checkout)) for checkout in checkouts)
    assert first != second and answers(first) and answers(second)
    assert started(script("start", checkouts[0])) == first  # started again: the same cluster, still running
    assert script("stop", checkouts[0]).returncode == 0
    assert answers(second)  # the other checkout's cluster is untouched
    assert started(script("start", checkouts[0])) != second  # a new one, never on the port in use


def test_a_folder_it_did_not_create_is_neither_used_nor_deleted(checkouts: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "someone-elses"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    refused = script("start", checkouts[0], CAMPAIGNKIT_PG_DIR=str(folder))
    assert refused.returncode == 1 and "was not created by" in refused.stderr
    assert script("stop", checkouts[0], CAMPAIGNKIT_PG_DIR=str(folder)).returncode == 0
    assert (folder / "keep.txt").read_text() == "mine"


def test_a_port_chosen_and_taken_is_one_error_and_leaves_nothing(checkouts: list[Path]) -> None:
    url = started(script("start", checkouts[0]))
    port = url.rsplit(":", 1)[1].split("/")[0]
    folder = Path(f"/tmp/ck-pg-{uuid.uuid4().hex[:8]}")
    taken = script("start", checkouts[1], CAMPAIGNKIT_PG_DIR=str(folder), CAMPAIGNKIT_PG_PORT=port)
    assert taken.returncode == 1 and f"port(s) {port} in use" in taken.stderr
    assert not folder.exists()
