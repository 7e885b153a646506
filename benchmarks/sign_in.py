"""Sign-in: the password hash's cost, and what a burst of failed sign-ins does to the audit trail and to the client.

    python benchmarks/sign_in.py [--burst 1000] [--repeat 20]

On a fresh SQLite database with one operator account, through the app in-process (fastapi TestClient, redirects not
followed): the argon2 parameters of the stored hash next to the library's recommended ones; the median and worst
time of a successful sign-in (POST /sign-in, an argon2 verification each); then a burst of N failed sign-ins from
one client address with made-up names, counting the answers, the audit rows the burst added and whether the
client's right password is then refused; and 20 wrong passwords for the one account from 20 addresses (behind a
trusted proxy), after which the account refuses its right password. Targets: the library's recommended argon2
parameters; the burst adds at most 5 audit rows and locks the client out; the account locks after
web.sign_in_lockout_failures failures.
"""

from __future__ import annotations

import argparse
import atexit
import secrets
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from argon2 import Parameters, extract_parameters
from engine import cpu_calibration  # benchmarks/engine.py: the host's speed
from fastapi.testclient import TestClient
from pwdlib import PasswordHash
from sqlalchemy import func, select
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from campaignkit.core import create_app
from campaignkit.core.accounts.roles import Role
from campaignkit.core.accounts.users import Accounts
from campaignkit.core.audit import Actor
from campaignkit.core.db import reading
from campaignkit.core.db.migrate import upgrade
from campaignkit.core.db.schema import audit_history, users
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings

USER, PASSWORD = "bench.operator", "a long enough password for the benchmark"
PROXY = "127.0.0.1"  # the test client's address, a trusted proxy: X-Forwarded-For names each client


def audit_rows(runtime: Runtime) -> int:
    with reading(runtime.engine) as conn:
        return int(conn.execute(select(func.count()).select_from(audit_history)).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ck-bench-sign-in-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    print(f"cpu calibration: {cpu_calibration():.2f} s")
    runtime = Runtime(Settings(var_dir=folder, database_url=f"sqlite:///{folder / 'ck.db'}",
                               audit_key=secrets.token_urlsafe(48), secret_key=secrets.token_urlsafe(48),
                               web={"trusted_proxies": [PROXY]}))
    upgrade(runtime.engine)
    Accounts(runtime).add(USER, Role.OPERATOR, Actor("bench"), password=PASSWORD)

    with reading(runtime.engine) as conn:
        stored = conn.execute(select(users.c.password_hash).where(users.c.name == USER)).scalar_one()
    used: Parameters = extract_parameters(stored)
    recommended = extract_parameters(PasswordHash.recommended().hash("x"))
    print(f"argon2 parameters: {used.type.name} t={used.time_cost} m={used.memory_cost} KiB p={used.parallelism} "
          f"(library's recommended: t={recommended.time_cost} m={recommended.memory_cost} KiB "
          f"p={recommended.parallelism}): {'PASS' if used == recommended else 'FAIL'}")

    # X-Forwarded-For from a trusted proxy names the client, as uvicorn does for the served app (core/web/transport.py).
    app = ProxyHeadersMiddleware(create_app(runtime), trusted_hosts=[PROXY])
    client = TestClient(app, follow_redirects=False, client=(PROXY, 50000))
    form = {"name": USER, "password": PASSWORD}
    times = []
    for n in range(args.repeat + 1):
        began = time.perf_counter()
        answer = client.post("/sign-in", data=form, headers={"X-Forwarded-For": f"10.1.0.{n % 250}"})
        elapsed = time.perf_counter() - began
        assert answer.status_code == 303, answer.text
        if n:  # the first warms up
            times.append(elapsed * 1000)
    print(f"a successful sign-in: median {statistics.median(times):.0f} ms, worst {max(times):.0f} ms "
          f"(argon2 verification included)")

    before = audit_rows(runtime)
    began = time.perf_counter()
    answers = Counter(client.post("/sign-in", data={"name": f"guess{n}", "password": "wrong password here"},
                                  headers={"X-Forwarded-For": "203.0.113.7"}).status_code for n in range(args.burst))
    elapsed = time.perf_counter() - began
    added = audit_rows(runtime) - before
    locked_out = client.post("/sign-in", data=form, headers={"X-Forwarded-For": "203.0.113.7"}).status_code
    print(f"a burst of {args.burst} failed sign-ins from one client in {elapsed:.1f} s: answers {dict(answers)}, "
          f"{added} audit row(s) added ({'PASS' if added <= 5 else 'FAIL'}: <= 5), its right password then "
          f"answered {locked_out} ({'PASS' if locked_out == 429 else 'FAIL'}: locked out)")

    lockout = runtime.settings.web.sign_in_lockout_failures
    spread = Counter(client.post("/sign-in", data={"name": USER, "password": "wrong password here"},
                                 headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in range(20))
    refused = client.post("/sign-in", data=form, headers={"X-Forwarded-For": "198.51.100.200"}).status_code
    print(f"20 wrong passwords for one account from 20 addresses: answers {dict(spread)}; its right password then "
          f"answered {refused} ({'PASS' if refused != 303 else 'FAIL'}: the account locks after {lockout})")
    runtime.close()


if __name__ == "__main__":
    main()
