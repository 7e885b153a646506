"""Phishing simulations on the embedded default (SQLite, WAL): tracking hits through the served app, a launch of
100 000 recipients, and the results listings.

    python benchmarks/phishing.py [--recipients 20000] [--hits 20000] [--concurrency 64] [--warm-up 1000]
                                  [--crash-hits 6000] [--audience 100000] [--per-minute 100] [--repeat 10]
                                  [--parts tracking,crash,launch,results] [--role web] [--profile] [--keep]

1. Tracking. A phishing campaign of N recipients launched through the real launch path on a fresh SQLite file
   (migrated as `campaignkit init` migrates it), its emails marked sent a day ago (so the too_soon scanner rule does
   not filter) and its runs waiting at `observe`, as after the sends. The app is served by `campaignkit web` (the
   console script, its own process, uvicorn on 127.0.0.1), and a burst of H hits is sent by an asyncio HTTP/1.1 client
   over C keep-alive connections: recipients' sessions (open; open, click; open, click, submit; report; open,
   report; open, open) across many distinct recipients, each hit with its own browser-like user agent, after a
   warm-up of --warm-up hits to other recipients. It prints requests/s, p50/p95/p99 latency (client side: sent to
   answered), errors and the server process's CPU time per hit, then counts the tracking events in the database:
   every hit acknowledged (2xx, or the submit's 303) must have its event row, found by its user agent.
   Before that it prints the client's own ceiling (the same hits against a stub HTTP server in another process that
   answers at once), so that the client is seen not to be the bottleneck, and the served app's floor: OPTIONS
   /p/report (the HTTP stack, middleware and routing, no database) and GET /health.
   Targets: >= 3 000 requests/s, p99 <= 50 ms, 0 lost.
2. Crash. A second server on the same database; a burst of --crash-hits hits, and the server is killed (SIGKILL) once
   half of them are acknowledged; then every hit acknowledged before the kill must be in the database.
3. Launch. A phishing campaign whose audience is a generated CSV of --audience rows (about 20 time zones, groups),
   sending over P3D in business hours with a per-minute throttle; the launch (each send moment planned, the runs
   and results rows written) is timed, with the process's peak RSS over it. Target: <= 10 s at 100 000.
4. Results. The launched rows given realistic results by SQLAlchemy Core updates (90 % sent, 30 % opened, 10 %
   clicked, 3 % credentials, 5 % reported), then By User (first page, default sort; filtered on Clicked link), By
   Group and By Attack timed, median of --repeat after a warm-up. Targets: By User <= 50 ms, By Group and By Attack
   <= 200 ms.

--profile runs the server under cProfile (one profiler per thread started through threading.Thread.run: the event
loop and the hit writer; not AnyIO's worker threads) and the launch under cProfile, and prints where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import cProfile
import gc
import glob
import http.client
import io
import math
import os
import pstats
import random
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine import cpu_calibration  # benchmarks/engine.py: the host's speed
from history import _peak_rss, _reset_peak_rss, timed  # benchmarks/history.py: median and worst; peak RSS
from host import machine  # benchmarks/host.py
from sqlalchemy import String, case, func, select, update

from campaignkit.core.audit import Actor
from campaignkit.core.campaigns import Campaigns
from campaignkit.core.db import reading, writing
from campaignkit.core.db.migrate import upgrade
from campaignkit.core.db.schema import phishing_groups, phishing_results, runs
from campaignkit.core.definitions.loader import load_definition_text
from campaignkit.core.runtime import Runtime
from campaignkit.core.settings import Settings
from campaignkit.core.testing_web import free_port
from campaignkit.plugins.phishing.planning import SendingSettings, capacity_problem
from campaignkit.plugins.phishing.results import ResultsQuery, by_attack, by_group, by_user

DEFINITION = """
name: "{name}"
kind: phishing
audience: {{source: csv, path: {path}}}
settings:
  channel: "null"
  assignment: random
  attacks:
    - {{name: Shared document, template: email/phishing/shared_document, kind: credentials,
       sender: "Document Share <no-reply@docs-examp1e.test>"}}
    - {{name: Parcel notice, template: email/phishing/parcel_notice, kind: click,
       sender: "Parcel Service <tracking@parcel-examp1e.test>"}}
  sending: {sending}
  observe_for: P14D
  link_grace: P7D
  scanners: {{seconds_after_delivery: 10, confirm_clicks: false}}
"""
SEND_AT_ONCE = "{send_over: PT0S, business_hours_only: false, time_zone: Europe/London}"
SPREAD = ('{{send_over: P3D, business_hours: "09:00-17:00", weekdays: [mon, tue, wed, thu, fri], '
          'time_zone: Europe/London, per_minute: {per_minute}}}')
# About 20 time zones, weighted as a company with most people in Europe and North America.
ZONES = [("Europe/London", 14), ("Europe/Paris", 10), ("Europe/Berlin", 10), ("Europe/Madrid", 5),
         ("Europe/Lisbon", 3), ("Europe/Warsaw", 4), ("Europe/Athens", 2), ("Africa/Johannesburg", 2),
         ("Asia/Dubai", 2), ("Asia/Kolkata", 8), ("Asia/Singapore", 4), ("Asia/Shanghai", 3), ("Asia/Tokyo", 3),
         ("Australia/Sydney", 3), ("Pacific/Auckland", 1), ("America/Sao_Paulo", 3), ("America/New_York", 10),
         ("America/Chicago", 5), ("America/Denver", 2), ("America/Los_Angeles", 6)]
DEPARTMENTS = ("Finance", "Engineering", "Sales", "Marketing", "Support", "Legal", "HR", "Operations", "IT",
               "Research")
# A recipient's session: the hits one person makes, in order; weights per 100 sessions (160 hits).
SESSIONS = [(("opened",), 40), (("opened", "clicked"), 20), (("opened", "clicked", "submitted"), 10),
            (("reported",), 10), (("opened", "reported"), 10), (("opened", "opened"), 10)]
# Browser and mail-client user agents; {n} (the hit's number) makes each one unique, as a version field.
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.{n}.86 "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.{n}.86 "
    "Safari/537.36 Edg/131.0.2903.70",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1.{n} "
    "Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0.{n}",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/22B{n}",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Microsoft Outlook "
    "16.0.{n}; Pro",
]
ACKNOWLEDGED = (200, 303)  # the submit answers with its redirect to the awareness page
HIT_NAMES = ("opened", "clicked", "submitted", "reported", "filtered_hit")
# The server under cProfile: one profiler per thread (the event loop, the hit writer), each dumped
# as marshalled stats when uvicorn has shut down (SIGTERM); argv[1] is where.
PROFILED_SERVER = r"""
import cProfile, marshal, sys, threading
out = sys.argv.pop(1)
profiles = []
_run = threading.Thread.run
def run(self):
    profile = cProfile.Profile()
    profiles.append(profile)
    profile.enable()
    try:
        _run(self)
    finally:
        profile.disable()
threading.Thread.run = run
main_profile = cProfile.Profile()
profiles.append(main_profile)
from campaignkit.core.cli import main
main_profile.enable()
try:
    main()
except SystemExit:
    pass
finally:
    main_profile.disable()
    for index, profile in enumerate(profiles):
        profile.snapshot_stats()
        with open(f"{out}.{index}", "wb") as handle:
            marshal.dump(profile.stats, handle)
"""


# --- the machine ------------------------------------------------------------------------------------------------

def load() -> str:
    return " ".join(f"{n:.2f}" for n in os.getloadavg())


# --- a campaignkit install -----------------------------------------------------------------------------------

@dataclass
class Install:
    """A var folder with its SQLite database, and the settings the served app gets through its environment."""

    folder: Path
    port: int
    audit_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def database(self) -> Path:
        return self.folder / "campaignkit.db"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def runtime(self) -> Runtime:
        runtime = Runtime(Settings(var_dir=self.folder, database_url=f"sqlite:///{self.database}",
                                   audit_key=self.audit_key, secret_key=self.secret_key,
                                   web={"base_url": self.url}))
        upgrade(runtime.engine)  # as `campaignkit init` does: WAL, busy timeout, every migration
        return runtime

    def environment(self) -> dict[str, str]:
        return {**os.environ, "CAMPAIGNKIT_VAR_DIR": str(self.folder),
                "CAMPAIGNKIT_DATABASE_URL": f"sqlite:///{self.database}", "CAMPAIGNKIT_AUDIT_KEY": self.audit_key,
                "CAMPAIGNKIT_SECRET_KEY": self.secret_key, "CAMPAIGNKIT_WEB__BASE_URL": self.url}


def write_audience(path: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    zones = [zone for zone, weight in ZONES for _ in range(weight)]
    with path.open("w") as out:
        out.write("email,name,groups,time_zone,department\n")
        for i in range(count):
            department = DEPARTMENTS[rng.randrange(len(DEPARTMENTS))]
            zone = zones[rng.randrange(len(zones))] if i % 100 else ""  # 1 %: none, the settings' time_zone
            office = zone.rsplit("/", 1)[-1].replace("_", " ") if zone else "Remote"
            groups = [department, f"Office {office}"] + (["Managers"] if i % 10 == 0 else [])
            out.write(f"user{i:06d}@example.org,User {i},{';'.join(groups)},{zone},{department}\n")


def create(runtime: Runtime, name: str, audience: Path, sending: str) -> str:
    text = DEFINITION.format(name=name, path=audience, sending=sending)
    return Campaigns(runtime).create(load_definition_text(text, "phishing.yaml", kinds=runtime.kinds),
                                     Actor("bench"))


# --- serving ---------------------------------------------------------------------------------------------------

class Server:
    """`campaignkit web` in its own process, as production serves the web role."""

    def __init__(self, install: Install, role: str, profile: Path | None = None) -> None:
        self.install = install
        self.log = install.folder / f"server-{time.time_ns()}.log"
        command = [str(Path(sys.executable).parent / "campaignkit")]
        if profile is not None:
            command = [sys.executable, "-c", PROFILED_SERVER, str(profile)]
        command += [role, "--host", "127.0.0.1", "--port", str(install.port)]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, env=install.environment(), cwd=install.folder, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.install.port, timeout=2)
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far (user + system, every thread)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the client --------------------------------------------------------------------------------------------------

@dataclass
class Hit:
    number: int  # unique across the benchmark: its user agent carries it
    event: str
    request: bytes


@dataclass
class Burst:
    answered: list[tuple[int, int, float]] = field(default_factory=list)  # (hit number, status, seconds)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    client_cpu: float = 0.0  # the client's own CPU seconds over the burst
    sent: int = 0

    def statuses(self) -> Counter[int]:
        return Counter(status for _, status, _ in self.answered)

    def acknowledged(self) -> set[int]:
        return {number for number, status, _ in self.answered if status in ACKNOWLEDGED}

    def summary(self, what: str, ok: tuple[int, ...] = ACKNOWLEDGED) -> str:
        latencies = sorted(seconds for _, _, seconds in self.answered)
        rate = len(self.answered) / self.seconds if self.seconds else 0.0
        failed = sum(n for status, n in self.statuses().items() if status not in ok) + sum(
            self.errors.values())
        return (f"{what}: {len(self.answered)} answered in {self.seconds:.2f} s = {rate:,.0f} requests/s; latency "
                f"p50 {percentile(latencies, 50):.1f} ms, p95 {percentile(latencies, 95):.1f} ms, p99 "
                f"{percentile(latencies, 99):.1f} ms, max {latencies[-1] * 1000 if latencies else 0:.1f} ms; "
                f"errors {failed} (statuses {dict(sorted(self.statuses().items()))}"
                f"{', ' + ', '.join(f'{k} {v}' for k, v in self.errors.items()) if self.errors else ''}); client CPU "
                f"{self.client_cpu / max(len(self.answered), 1) * 1e6:.0f} µs a request")

    def rate(self) -> float:
        return len(self.answered) / self.seconds if self.seconds else 0.0

    def p99(self) -> float:
        return percentile(sorted(seconds for _, _, seconds in self.answered), 99)


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of sorted seconds, in milliseconds."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(len(ordered) * q / 100) - 1))] * 1000


async def _answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    if status == 204 or status == 304:
        return status
    match = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
    if match is None:
        raise ValueError("an answer without Content-Length")
    await reader.readexactly(int(match.group(1)))
    return status


async def _drive(port: int, sessions: list[list[Hit]], concurrency: int, burst: Burst,
                 stop_after: int | None = None, on_stop: Callable[[], None] | None = None) -> None:
    """Each of ``concurrency`` connections takes the next session and sends its hits in order, each after the
    answer to the one before (keep-alive, reconnecting after an error). ``stop_after``: once that many hits are
    acknowledged, ``on_stop`` is called (the server killed) and no new hit is sent."""
    pending = iter(sessions)
    stopped = False

    async def connection() -> None:
        nonlocal stopped
        reader = writer = None
        for session in pending:
            for hit in session:
                if stopped:
                    return
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    began = time.perf_counter()
                    burst.sent += 1
                    writer.write(hit.request)
                    status = await _answer(reader)  # type: ignore[arg-type]
                    burst.answered.append((hit.number, status, time.perf_counter() - began))
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    burst.errors[type(exc).__name__] += 1
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    continue
                if stop_after is not None and not stopped and len(burst.answered) >= stop_after:
                    stopped = True
                    if on_stop is not None:
                        on_stop()
                    return
        if writer is not None:
            writer.close()

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    burst.seconds = time.perf_counter() - began
    burst.client_cpu = time.process_time() - cpu


def run_burst(port: int, sessions: list[list[Hit]], concurrency: int, **options: Any) -> Burst:
    burst = Burst()
    gc.collect()
    gc.freeze()  # the client's own collector pauses would show as the server's latency
    try:
        asyncio.run(_drive(port, sessions, concurrency, burst, **options))
    finally:
        gc.unfreeze()
    return burst


def plan_hits(tokens: list[str], hits: int, port: int, first_number: int, seed: int) -> tuple[list[list[Hit]],
                                                                                              dict[str, int]]:
    """Sessions of about ``hits`` hits over recipients picked at random (each once while there are enough), and
    the user agent -> hit number of every hit."""
    rng = random.Random(seed)
    kinds = [steps for steps, weight in SESSIONS for _ in range(weight)]
    order = list(range(len(tokens)))
    rng.shuffle(order)
    host = f"127.0.0.1:{port}".encode()
    sessions: list[list[Hit]] = []
    agents: dict[str, int] = {}
    number, made = first_number, 0
    while made < hits:
        token = tokens[order[len(sessions) % len(order)]]
        session = []
        for event in kinds[rng.randrange(len(kinds))][: hits - made]:
            agent = AGENTS[number % len(AGENTS)].format(n=number)
            agents[agent] = number
            session.append(Hit(number, event, _request(event, token, agent, host)))
            number += 1
            made += 1
        sessions.append(session)
    return sessions, agents


def token_of(hit: Hit) -> bytes:
    if hit.request.startswith(b"POST /p/report "):
        return hit.request.split(b"X-Campaignkit-Token: ")[1][:32]
    return hit.request.split(b"/p/", 1)[1][:32]


def _request(event: str, token: str, agent: str, host: bytes) -> bytes:
    common = b"Host: " + host + b"\r\nUser-Agent: " + agent.encode() + b"\r\nAccept-Language: en-GB,en;q=0.9\r\n"
    if event == "opened":
        return (f"GET /p/{token}/o.gif HTTP/1.1\r\n".encode() + common
                + b"Accept: image/avif,image/webp,image/apng,image/*,*/*;q=0.8\r\n\r\n")
    if event == "clicked":
        return (f"GET /p/{token} HTTP/1.1\r\n".encode() + common
                + b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\r\n")
    if event == "submitted":
        body = b"username=someone%40example.org&password=Winter2026%21"
        return (f"POST /p/{token}/submit HTTP/1.1\r\n".encode() + common
                + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert event == "reported"
    return (b"POST /p/report HTTP/1.1\r\n" + common + b"X-Campaignkit-Token: " + token.encode()
            + b"\r\nOrigin: https://outlook.office.com\r\nContent-Length: 0\r\n\r\n")


def stub_server(port: int) -> None:
    """A trivial HTTP/1.1 server (a fixed 200 to every request, keep-alive): what the client costs on its own."""
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"

    class Stub(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport, self.buffer = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                match = re.search(rb"\r\ncontent-length:\s*(\d+)", self.buffer[:end], re.IGNORECASE)
                size = end + 4 + (int(match.group(1)) if match else 0)
                if len(self.buffer) < size:
                    return
                self.buffer = self.buffer[size:]
                self.transport.write(answer)

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Stub, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(serve())


# --- 1 and 2: tracking ---------------------------------------------------------------------------------------------

def tracking_campaign(install: Install, recipients: int) -> tuple[str, list[str]]:
    """A campaign of ``recipients``, its emails sent a day ago and its runs waiting for what recipients do."""
    runtime = install.runtime()
    audience = install.folder / "tracking.csv"
    write_audience(audience, recipients)
    campaign_id = create(runtime, "Phishing benchmark: tracking", audience, SEND_AT_ONCE)
    began = time.perf_counter()
    Campaigns(runtime).launch(campaign_id, Actor("bench"))
    launched = time.perf_counter() - began
    now = datetime.now(UTC)
    with writing(runtime.engine) as conn:
        # As after the sends: accepted by the relay a day ago, each run waiting at observe until its timeout.
        conn.execute(update(phishing_results).where(phishing_results.c.campaign_id == campaign_id).values(
            sent_at=now - timedelta(days=1), delivery="Delivered", delivery_at=now - timedelta(days=1),
            delivery_detail={"code": "250", "text": "queued"}))
        conn.execute(update(runs).where(runs.c.campaign_id == campaign_id).values(
            status="waiting", current_node="observe", due_at=now + timedelta(days=13), updated_at=now))
    with reading(runtime.engine) as conn:
        tokens = list(conn.execute(select(phishing_results.c.token).where(
            phishing_results.c.campaign_id == campaign_id).order_by(phishing_results.c.run_id)).scalars())
    runtime.close()
    print(f"tracking campaign: {recipients} recipients launched in {launched:.1f} s, marked sent a day ago, runs "
          "waiting at observe")
    return campaign_id, tokens


def recorded(install: Install, agents: dict[str, int]) -> tuple[set[int], Counter[str], int]:
    """The hit numbers whose events are in the database (by user agent), the events by name, and tracking events
    that are none of the given hits'."""
    found: set[int] = set()
    names: Counter[str] = Counter()
    other = 0
    with sqlite3.connect(install.database) as raw:  # asked directly, not through the code being measured
        rows = raw.execute("SELECT name, json_extract(payload, '$.user_agent') FROM events WHERE source = 'tracking'")
        for name, agent in rows:
            number = agents.get(agent)
            if number is None:
                other += 1
                continue
            found.add(number)
            names[name] += 1
    return found, names, other


def by_event(burst: Burst, sessions: list[list[Hit]]) -> str:
    """p50 and p99 of each kind of hit: a slow page shows apart from the pixel."""
    event = {hit.number: hit.event for session in sessions for hit in session}
    latencies: dict[str, list[float]] = {}
    for number, _, seconds in burst.answered:
        latencies.setdefault(event[number], []).append(seconds)
    return "; ".join(f"{name} p50 {percentile(sorted(found), 50):.1f} ms, p99 {percentile(sorted(found), 99):.1f} ms"
                     for name, found in sorted(latencies.items()))


def tracking(args: argparse.Namespace, folder: Path, checks: list[tuple[str, bool, str]]) -> None:
    install = Install(folder / "tracking", free_port())
    _, tokens = tracking_campaign(install, args.recipients)

    stub_port = free_port()
    stub = subprocess.Popen([sys.executable, __file__, "--stub-server", str(stub_port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", stub_port, timeout=1).connect()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sessions, _ = plan_hits(tokens, args.hits, stub_port, 0, seed=1)
        ceiling = run_burst(stub_port, sessions, args.concurrency)
    finally:
        stub.terminate()
        stub.wait()
    print(ceiling.summary(f"client ceiling (the same hits against a stub server, {args.concurrency} connections)"))

    profile = folder / "server.prof" if args.profile else None
    server = Server(install, args.role, profile)
    try:
        host = b"Host: 127.0.0.1:" + str(install.port).encode() + b"\r\n"
        preflight = [[Hit(i, "preflight", b"OPTIONS /p/report HTTP/1.1\r\n" + host + b"Origin: https://outlook.office"
                          b".com\r\nAccess-Control-Request-Method: POST\r\n\r\n")] for i in range(args.hits // 2)]
        run_burst(install.port, preflight[:1000], args.concurrency)  # warm-up
        cpu = server.cpu_seconds()
        baseline = run_burst(install.port, preflight, args.concurrency)
        print(baseline.summary(f"campaignkit OPTIONS /p/report (`campaignkit {args.role}`: its HTTP stack, middleware "
                               "and routing, no database)", ok=(204,))
              + f"; server CPU {(server.cpu_seconds() - cpu) / len(preflight) * 1e6:.0f} µs a request")
        health = [[Hit(i, "health", b"GET /health HTTP/1.1\r\n" + host + b"\r\n")] for i in range(300)]
        print(run_burst(install.port, health, args.concurrency).summary("campaignkit GET /health"))
        sessions, agents = plan_hits(tokens, args.hits, install.port, 1, seed=2)
        used = {token_of(hit) for session in sessions for hit in session}
        mix = Counter(hit.event for session in sessions for hit in session)
        # The warm-up's hits go to recipients the burst leaves alone (while there are some), and are checked too.
        spare = [token for token in tokens if token not in used] or tokens
        warm_up, warm_agents = plan_hits(spare, args.warm_up, install.port, 5_000_000, seed=4)
        warmed = run_burst(install.port, warm_up, args.concurrency)
        print(warmed.summary(f"warm-up: {args.warm_up} hits to other recipients (not counted below)"))
        print(f"burst: {args.hits} hits ({', '.join(f'{k} {v}' for k, v in mix.items())}) from {len(used)} distinct "
              f"recipients, {len(sessions)} sessions, {args.concurrency} connections; load average {load()}")
        cpu = server.cpu_seconds()
        burst = run_burst(install.port, sessions, args.concurrency)
        cpu = server.cpu_seconds() - cpu
        print(burst.summary("tracking hits") + f"; server CPU {cpu / max(len(burst.answered), 1) * 1e6:.0f} µs a hit "
              f"({cpu / burst.seconds:.0%} of a core)")
        print("latency by hit: " + by_event(burst, sessions))
    finally:
        server.stop()
    if profile is not None:
        print_profile(sorted(glob.glob(f"{profile}.*")), "the server over OPTIONS, /health, the warm-up and the burst")
    acknowledged = burst.acknowledged() | warmed.acknowledged()
    found, names, other = recorded(install, {**agents, **warm_agents})
    lost = acknowledged - found
    print(f"database: {sum(names.values())} tracking events for the burst and the warm-up ({dict(names)}), "
          f"{len(acknowledged)} hits acknowledged, {len(acknowledged & found)} of them recorded, {len(lost)} lost; "
          f"{len(found - acknowledged)} recorded without an acknowledgement; {other} other tracking events")
    failed = sum(len(b.answered) - len(b.acknowledged()) + sum(b.errors.values()) for b in (burst, warmed))
    checks += [
        ("tracking requests/s", burst.rate() >= 3000, f">= 3 000 ({burst.rate():,.0f}; client ceiling "
                                                      f"{ceiling.rate():,.0f})"),
        ("tracking p99 latency", burst.p99() <= 50, f"<= 50 ms ({burst.p99():.1f} ms)"),
        ("tracking hits lost", not lost and failed == 0, f"0 ({len(lost)} lost, {failed} errors)"),
    ]

    if "crash" in args.parts:
        crash(args, install, tokens, checks)


def crash(args: argparse.Namespace, install: Install, tokens: list[str], checks: list[tuple[str, bool, str]]) -> None:
    server = Server(install, args.role)
    sessions, agents = plan_hits(tokens, args.crash_hits, install.port, 10_000_000, seed=3)
    killed_at: list[int] = []

    def kill() -> None:
        killed_at.append(len(burst.answered))
        server.process.send_signal(signal.SIGKILL)

    burst = Burst()
    asyncio.run(_drive(install.port, sessions, args.concurrency, burst, stop_after=args.crash_hits // 2,
                       on_stop=kill))
    server.process.wait()
    acknowledged = burst.acknowledged()
    found, _, _ = recorded(install, agents)
    with sqlite3.connect(install.database) as raw:
        check = raw.execute("PRAGMA quick_check").fetchone()[0]
    lost = acknowledged - found
    in_flight = burst.sent - len(burst.answered)
    print(f"crash: server killed (SIGKILL, exit {server.process.returncode}) after {killed_at[0]} answers; "
          f"{len(acknowledged)} hits acknowledged before the kill, {len(acknowledged & found)} of them in the "
          f"database, "
          f"{len(lost)} lost; {in_flight} in flight at the kill ({burst.errors.total()} connection errors), "
          f"{len(found - acknowledged)} recorded without an answer; quick_check: {check}")
    checks.append(("acknowledged hits after kill -9", not lost and check == "ok",
                   f"all in the database ({len(lost)} of {len(acknowledged)} lost)"))


def print_profile(files: list[str], what: str) -> None:
    if not files:
        print(f"no profile of {what}", file=sys.stderr)
        return
    out = io.StringIO()
    stats = pstats.Stats(*files, stream=out)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)
    print(f"--- cProfile of {what} (its threads together) ---\n{out.getvalue()}", file=sys.stderr)


# --- 3 and 4: launch and results -----------------------------------------------------------------------------------

def launch(args: argparse.Namespace, folder: Path, checks: list[tuple[str, bool, str]]) -> tuple[Runtime, str]:
    install = Install(folder / "results", free_port())
    runtime = install.runtime()
    audience = install.folder / "audience.csv"
    began = time.perf_counter()
    write_audience(audience, args.audience)
    sending = SPREAD.format(per_minute=args.per_minute)
    campaign_id = create(runtime, "Phishing benchmark: 100 000", audience, sending)
    print(f"audience: {args.audience} rows, {len(ZONES)} time zones (1 % none), 10 departments, offices, managers; "
          f"written and campaign created in {time.perf_counter() - began:.1f} s")
    now = runtime.clock.now()
    warning = capacity_problem(SendingSettings.model_validate(_sending(sending)), args.audience, now)
    rss_before = _reset_peak_rss()
    profiler = cProfile.Profile() if args.profile else None
    began, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    result = Campaigns(runtime).launch(campaign_id, Actor("bench"))
    if profiler:
        profiler.disable()
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    peak = _peak_rss()
    with reading(runtime.engine) as conn:
        first, last, rows, groups = conn.execute(select(
            func.min(phishing_results.c.send_at), func.max(phishing_results.c.send_at), func.count(),
            select(func.count()).select_from(phishing_groups).where(phishing_groups.c.campaign_id == campaign_id)
            .scalar_subquery()).where(phishing_results.c.campaign_id == campaign_id)).one()
        busiest = conn.execute(select(func.count()).select_from(phishing_results)
                               .where(phishing_results.c.campaign_id == campaign_id)
                               .group_by(func.strftime("%Y-%m-%d %H:%M", phishing_results.c.send_at))
                               .order_by(func.count().desc()).limit(1)).scalar()
    print(f"launch ({now:%a %Y-%m-%d %H:%M} UTC, send_over P3D, business hours 09:00-17:00 Mon-Fri in each "
          f"recipient's zone, per_minute {args.per_minute}): {result.target_count} runs, {rows} results rows, "
          f"{groups} group rows in {seconds:.2f} s ({cpu:.2f} s CPU); sends planned {first:%a %d %H:%M} to "
          f"{last:%a %d %H:%M} UTC, busiest minute {busiest}; peak RSS {peak / 1024:.0f} MB (process "
          f"{rss_before / 1024:.0f} MB before)"
          + (f"\n  launch warning: {warning}" if warning else ""))
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(30)
        print(f"--- cProfile of the launch ---\n{out.getvalue()}", file=sys.stderr)
    limit = 10 * max(args.audience / 100_000, 1)
    checks.append((f"launch of {args.audience}", seconds <= limit, f"<= {limit:g} s ({seconds:.2f} s; peak RSS "
                                                                   f"{peak / 1024:.0f} MB)"))
    return runtime, campaign_id


def _sending(flow: str) -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load(flow))


def results(args: argparse.Namespace, runtime: Runtime, campaign_id: str,
            checks: list[tuple[str, bool, str]]) -> None:
    r = phishing_results.c
    began = time.perf_counter()
    e = (r.run_id * 104729) % 1000  # per mille, spread over the rows whatever their order
    sent = (r.run_id * 7919) % 10 != 0  # 90 %

    def after(column: Any, seconds: Any) -> Any:  # a time as UTCDateTime stores it, ``seconds`` after ``column``
        return func.strftime("%Y-%m-%d %H:%M:%S", column, func.printf("+%d seconds", seconds), type_=String
                             ).concat(".000000")

    with writing(runtime.engine) as conn:
        conn.execute(update(phishing_results).where(r.campaign_id == campaign_id, sent).values(
            sent_at=r.send_at, delivery=case((e >= 980, "Failed"), else_="Delivered"),
            delivery_at=after(r.send_at, 5 + e % 50), delivery_detail={"code": "250", "text": "ok"}))
        conn.execute(update(phishing_results).where(r.campaign_id == campaign_id, sent, e < 980).values(
            opened_at=case((e < 333, after(r.send_at, 120 + (e * 37) % 7200))),  # 30 % of all
            clicked_at=case((e < 111, after(r.send_at, 300 + (e * 37) % 7200))),  # 10 %
            submitted_at=case((e < 33, after(r.send_at, 360 + (e * 37) % 7200))),  # 3 %
            reported_at=case((e.between(900, 955), after(r.send_at, 600 + (e * 53) % 3600))),  # 5 %
            training_started_at=case((e < 60, after(r.send_at, 900 + (e * 37) % 7200))),
            training_finished_at=case((e < 40, after(r.send_at, 2400 + (e * 37) % 7200)))))
        shares = conn.execute(select(func.count(), func.count(r.sent_at), func.count(r.opened_at),
                                     func.count(r.clicked_at), func.count(r.submitted_at), func.count(r.reported_at))
                              .where(r.campaign_id == campaign_id)).one()
    total = shares[0]
    print(f"results filled in {time.perf_counter() - began:.1f} s: " + ", ".join(
        f"{name} {n / total:.1%}" for name, n in zip(("sent", "opened", "clicked", "credentials", "reported"),
                                                    shares[1:], strict=True)))
    cases: list[tuple[str, Callable[[], Any], float]] = [
        ("By User, first page (100 rows, by user)", lambda: by_user(runtime, ResultsQuery(campaign_id)), 50),
        ("By User, event = Clicked link, first page", lambda: by_user(runtime, ResultsQuery(
            campaign_id, event="Clicked link")), 50),
        ("By Group", lambda: by_group(runtime, campaign_id), 200),
        ("By Attack", lambda: by_attack(runtime, campaign_id), 200),
    ]
    page = by_user(runtime, ResultsQuery(campaign_id))
    clicked = by_user(runtime, ResultsQuery(campaign_id, event="Clicked link"))
    groups, attacks = by_group(runtime, campaign_id), by_attack(runtime, campaign_id)
    assert len(page) == 100 and [row["Email"] for row in page] == sorted(row["Email"] for row in page), page[:2]
    assert len(clicked) == 100 and all(row["Clicked link"] is not None for row in clicked)
    assert sum(row["Users"] for row in attacks) == total and len(attacks) == 2, attacks
    print(f"  {len(groups)} groups ({sum(row['Users'] for row in groups)} memberships), {len(attacks)} attacks; "
          f"load average {load()}")
    for name, call, limit in cases:
        median, worst = timed(call, args.repeat)
        print(f"  {name:44s} median {median:8.2f} ms  worst {worst:8.2f} ms")
        checks.append((name, median <= limit, f"<= {limit:g} ms (median {median:.2f} ms)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=20_000, help="the tracking campaign's recipients")
    parser.add_argument("--hits", type=int, default=20_000, help="hits in the tracking burst")
    parser.add_argument("--concurrency", type=int, default=64, help="the client's keep-alive connections")
    parser.add_argument("--warm-up", type=int, default=1_000, help="hits sent to other recipients before the burst")
    parser.add_argument("--crash-hits", type=int, default=6_000, help="hits in the burst the server is killed in")
    parser.add_argument("--audience", type=int, default=100_000, help="recipients of the launch and the results")
    parser.add_argument("--per-minute", type=int, default=100, help="the launch's sending.per_minute")
    parser.add_argument("--repeat", type=int, default=10, help="repetitions of each results query")
    parser.add_argument("--parts", default="tracking,crash,launch,results",
                        help="which parts to run, comma-separated (crash needs tracking, results needs launch)")
    parser.add_argument("--role", choices=("web", "serve"), default="web",
                        help="the served command: web (the web role) or serve (web, worker and scheduler)")
    parser.add_argument("--profile", action="store_true", help="cProfile the server (every thread) and the launch")
    parser.add_argument("--keep", action="store_true", help="keep the databases (their folder is printed)")
    parser.add_argument("--stub-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub_server:
        stub_server(args.stub_server)
        return
    args.parts = {part.strip() for part in args.parts.split(",")}
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="ck-phishing-bench-"))
    if args.keep:
        print(f"databases under {folder}")
    else:
        atexit.register(shutil.rmtree, folder, True)
    command = " ".join(["python benchmarks/phishing.py", *sys.argv[1:]])
    print(f"command: {command}\nmachine: {machine('sqlalchemy', 'uvicorn')}\n"
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load()}, "
          f"calibration {cpu_calibration():.2f} s (benchmarks/engine.py's fixed loop)")
    checks: list[tuple[str, bool, str]] = []
    if "tracking" in args.parts:
        tracking(args, folder, checks)
    if "launch" in args.parts:
        runtime, campaign_id = launch(args, folder, checks)
        if "results" in args.parts:
            results(args, runtime, campaign_id, checks)
        runtime.close()
    print(f"\n{'figure':44s} result  target\n{'-' * 44} ------  {'-' * 40}")
    for name, ok, target in checks:
        print(f"{name:44s} {'PASS' if ok else 'FAIL':6s}  {target}")
    print(f"\n{command}: {time.perf_counter() - started:.0f} s in all; load average {load()}")


if __name__ == "__main__":
    main()
