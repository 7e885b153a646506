"""A private Postfix and a private Dovecot on 127.0.0.1 for the phishing mail tests.

Both run as root from their own directory, reading nothing from /etc/postfix or /etc/dovecot and writing nothing
outside it (see the shared notes on mail test servers). Postfix delivers to Maildirs with virtual(8), without UNIX
accounts; Dovecot serves the same Maildirs over plain IMAP. Every process started here is stopped on leaving the
context manager, and teardown fails loudly if one is left behind.
"""

from __future__ import annotations

import contextlib
import mailbox
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

HOST = "127.0.0.1"
DOMAIN = "corp.test"
NOBODY = 65534  # virtual(8) refuses uid 0; Postfix writes and Dovecot reads the Maildirs as nobody:nogroup
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])
POSTFIX_PROGRAMS = ("postfix", "postconf")
DOVECOT_PROGRAMS = ("dovecot", "doveadm")
INSTALL_HINT = ('apt-get install: echo "postfix postfix/main_mailer_type select No configuration" | '
                "debconf-set-selections && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                "--no-install-recommends postfix dovecot-imapd")
# Simulated outcomes for the fake domains; anything else fails at once rather than trying DNS.
TRANSPORTS = {
    "nohost.test": "error:5.1.2 Host or domain name not found (simulated)",
    "full.test": "error:5.2.2 Mailbox full (simulated)",
    "defer.test": "retry:4.4.1 Connection timed out (simulated)",
}

# chroot is "n" on every line: Debian's own master.cf chroots, which breaks a private queue directory.
MASTER_CF = """\
{host}:{port} inet n - n - - smtpd
{host}:{accept_port} inet n - n - - smtpd -o smtpd_reject_unlisted_recipient=no
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
maillog_file = {base}/maillog
maillog_file_prefixes = {base}
myhostname = mta.{domain}
mydomain = {domain}
myorigin = {domain}
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is off in this test MTA
alias_maps =
alias_database =
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {base}/mail
virtual_mailbox_maps = texthash:{config}/vmailbox
virtual_uid_maps = static:{nobody}
virtual_gid_maps = static:{nobody}
recipient_delimiter = +
transport_maps = texthash:{config}/transport
default_transport = error:5.4.4 no mail leaves the test MTA
relayhost =
biff = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 1s
maximal_queue_lifetime = 6s
bounce_queue_lifetime = 6s
"""

DOVECOT_CONF = """\
base_dir = {base}/dovecot/run
state_dir = {base}/dovecot/state
instance_name = {instance}
log_path = {base}/dovecot/dovecot.log
protocols = imap
listen = {host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
# Without a stats service to talk to, a login process stopping waits 5 s for a stats handshake that never comes.
stats_writer_socket_path =
mail_location = maildir:{mail}/%d/%n
first_valid_uid = {nobody}
last_valid_uid = {nobody}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu {base}/dovecot/users
}}
userdb {{
  driver = static
  args = uid={nobody} gid={nobody} home={mail}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
# One failed login would otherwise slow every later login from 127.0.0.1 by 2 to 15 s.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def program(name: str) -> str:
    """The full path of a Postfix or Dovecot program (they live in /usr/sbin, not always on a user's PATH)."""
    found = shutil.which(name, path=SEARCH_PATH)
    if found is None:
        raise FileNotFoundError(name)
    return found


def require_programs(*names: str) -> None:
    """Skip the test when the servers are not installed on a developer's machine; under CI, fail: CI installs them."""
    missing = [name for name in names if shutil.which(name, path=SEARCH_PATH) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed ({INSTALL_HINT})"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    """A port nothing holds. Postfix binds with SO_REUSEPORT, so a plain bind() is the check that it is really free."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    """Whether a socket listens on 127.0.0.1:``port``, seen in /proc rather than by connecting: a probe connection
    makes Dovecot fork a login process, and one still starting when Dovecot stops holds the stop up by 5 s."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as table:
        return any(fields[1] == wanted and fields[3] == "0A" for fields in map(str.split, table) if len(fields) > 3)


def wait_for_port(port: int, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not listening(port):
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else "(no log)"
            raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout}s; log:\n{tail}")
        time.sleep(0.02)


def running(process: psutil.Process) -> bool:
    """Still running; an exited daemon stays a zombie until PID 1 reaps it, which here can take seconds."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(processes: Iterable[psutil.Process], timeout: float, what: str) -> None:
    """Wait for every process to exit; kill what is left and fail, so no test run leaves a server behind."""
    deadline = time.monotonic() + timeout
    alive = list(processes)
    while alive := [process for process in alive if running(process)]:
        if time.monotonic() > deadline:
            for process in alive:
                process.kill()
            raise RuntimeError(f"{what} left {len(alive)} processes running after {timeout}s (killed)")
        time.sleep(0.02)


def family(pid_file: Path) -> list[psutil.Process]:
    """The master process named by ``pid_file`` and all its children."""
    try:
        master = psutil.Process(int(pid_file.read_text().split()[0]))
        return [master, *master.children(recursive=True)]
    except (OSError, ValueError, IndexError, psutil.Error):
        return []


def run_detached(command: list[str], output: Path, timeout: float) -> str:
    """Run a command that starts a daemon; its output goes to a file, since the daemon inherits and keeps the
    descriptors open (a pipe would never close). Returns "" on success, else the exit status and output."""
    with output.open("wb") as sink:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                              timeout=timeout, check=False)
    return "" if done.returncode == 0 else f"exit {done.returncode}: {output.read_text(errors='replace')}"


@contextlib.contextmanager
def private_directory() -> Iterator[Path]:
    """A fresh directory the servers' own users can traverse (pytest's tmp_path is under a 0700 directory)."""
    base = Path(tempfile.mkdtemp(prefix="ck-mail-"))
    try:
        base.chmod(0o755)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Postfix:
    base: Path
    config: Path
    port: int  # Postfix defaults: an unknown recipient is refused at RCPT (550 5.1.1)
    accept_port: int  # smtpd_reject_unlisted_recipient=no: accepts everyone, then bounces with a DSN
    mail: Path

    def maildir(self, user: str) -> mailbox.Maildir:
        return mailbox.Maildir(self.mail / DOMAIN / user, create=False)

    def log(self) -> str:
        path = self.base / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_mail(self, user: str, count: int, timeout: float = 5.0) -> None:
        """Wait until ``user``'s Maildir holds at least ``count`` messages (new or cur)."""
        deadline = time.monotonic() + timeout
        folder = self.mail / DOMAIN / user
        while True:
            have = sum(len(os.listdir(folder / sub)) for sub in ("new", "cur") if (folder / sub).is_dir())
            if have >= count:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{user}: {have} of {count} messages after {timeout}s; maillog:\n"
                                   f"{self.log()[-3000:]}")
            time.sleep(0.02)


@contextlib.contextmanager
def postfix(base: Path, mailboxes: Iterable[str], *, start_timeout: float = 30.0) -> Iterator[Postfix]:
    """Postfix for ``@corp.test`` ``mailboxes`` (local parts), listening on two free 127.0.0.1 ports."""
    config, queue, data, mail = base / "postfix", base / "queue", base / "data", base / "mail"
    for folder in (config, queue, data, mail):
        folder.mkdir(mode=0o755)
    shutil.chown(data, "postfix", "postfix")
    os.chown(mail, NOBODY, NOBODY)
    port, accept_port = free_port(), free_port()
    while accept_port == port:
        accept_port = free_port()
    (config / "main.cf").write_text(MAIN_CF.format(base=base, config=config, domain=DOMAIN, nobody=NOBODY))
    (config / "master.cf").write_text(MASTER_CF.format(host=HOST, port=port, accept_port=accept_port))
    (config / "vmailbox").write_text("".join(f"{user}@{DOMAIN} {DOMAIN}/{user}/\n" for user in mailboxes))
    (config / "transport").write_text("".join(f"{domain} {target}\n" for domain, target in TRANSPORTS.items()))
    command = [program("postfix"), "-c", str(config)]
    server = Postfix(base=base, config=config, port=port, accept_port=accept_port, mail=mail)
    try:
        started = run_detached([*command, "start"], base / "postfix.out", start_timeout)
        if started:
            raise RuntimeError(f"postfix start failed: {started}{server.log()[-2000:]}")
        wait_for_port(port, 5.0, base / "maillog")
        wait_for_port(accept_port, 5.0, base / "maillog")
        yield server
    finally:
        processes = family(queue / "pid" / "master.pid")
        subprocess.run([*command, "stop"], capture_output=True, timeout=10, check=False)
        wait_gone(processes, 10.0, "postfix")


@dataclass
class Dovecot:
    host: str
    port: int
    log: Path


@contextlib.contextmanager
def dovecot(base: Path, mail: Path, users: Mapping[str, str], *, start_timeout: float = 5.0) -> Iterator[Dovecot]:
    """Dovecot IMAP (plain, on a free 127.0.0.1 port) over Postfix's Maildirs; ``users`` maps address -> password."""
    home = base / "dovecot"
    for folder in (home, home / "run", home / "state"):
        folder.mkdir(mode=0o755, exist_ok=True)
    users_file = home / "users"
    users_file.write_text("".join(f"{address}:{{PLAIN}}{password}\n" for address, password in users.items()))
    shutil.chown(users_file, "root", "dovecot")  # the auth process runs as dovecot and must read it
    users_file.chmod(0o640)
    port = free_port()
    conf = home / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(base=base, mail=mail, host=HOST, port=port, nobody=NOBODY,
                                        instance=f"ck-{uuid.uuid4().hex[:8]}"))
    log = home / "dovecot.log"
    try:
        started = run_detached([program("dovecot"), "-c", str(conf)], home / "dovecot.out", start_timeout)
        if started:
            raise RuntimeError(f"dovecot start failed: {started}")
        wait_for_port(port, start_timeout, log)
        yield Dovecot(host=HOST, port=port, log=log)
    finally:
        processes = family(home / "run" / "master.pid")
        if processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                processes[0].send_signal(signal.SIGTERM)
        wait_gone(processes, 10.0, "dovecot")
