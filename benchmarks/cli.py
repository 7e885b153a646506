"""Start-up time of the `campaignkit` command, as a user waits for it.

    python benchmarks/cli.py [--repeat 10]

Runs the installed console script (the one next to this interpreter) as a new process each time, against a fresh
SQLite database under a temporary folder holding the demo journey (created, not launched), and prints the median
and worst wall-clock time of each command. Targets: `campaignkit --help` <= 0.3 s and `campaignkit campaign list`
on a small database <= 0.6 s, median of 10.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TARGETS = {"--help": 0.3, "campaign list": 0.6}


def campaignkit() -> list[str]:
    script = Path(sys.executable).with_name("campaignkit")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from campaignkit.core.cli import main; main()"]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system) of one run; the CPU time is less disturbed by other processes."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run([*campaignkit(), *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ck-cli-bench-"))
    try:
        # As a user runs it: bytecode caches written on the first run and read afterwards.
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("CAMPAIGNKIT_") and key != "PYTHONDONTWRITEBYTECODE"}
        env |= {"CAMPAIGNKIT_VAR_DIR": str(folder / "var"), "CAMPAIGNKIT_CONFIG": "", "COLUMNS": "120"}
        for name in ("journey.yaml", "contacts.csv"):
            shutil.copy(EXAMPLES / name, folder / name)
        run(["init"], folder, env)
        run(["campaign", "create", "journey.yaml"], folder, env)
        for command in ("--help", "campaign list"):
            run(command.split(), folder, env)  # warm the page cache and the bytecode caches
            times, cpu = zip(*(run(command.split(), folder, env) for _ in range(args.repeat)), strict=True)
            median = statistics.median(times)
            verdict = "met" if median <= TARGETS[command] else "not met"
            print(f"campaignkit {command}: median {median:.3f} s, worst {max(times):.3f} s over {args.repeat} runs, "
                  f"CPU median {statistics.median(cpu):.3f} s (target <= {TARGETS[command]} s: {verdict})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
