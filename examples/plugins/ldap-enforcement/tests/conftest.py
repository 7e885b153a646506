"""A real slapd (Debian's ``slapd`` package) per test: 127.0.0.1, a generated slapd.conf in tmp_path, mdb, seeded.

It never touches the system's slapd service or its data: its own config, database, pid file and ports. Without a
slapd binary the tests skip, unless the environment variable CI is set: there they fail, because CI installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ldap3 import BASE, Connection, Server
from ldap3.core.exceptions import LDAPCommunicationError
from ldap3.utils.dn import escape_rdn

from campaignkit.core.testing import free_port

SUFFIX = "dc=example,dc=org"
ROOT_DN, ROOT_PASSWORD = f"cn=admin,{SUFFIX}", "root-secret-for-tests"
PEOPLE, GROUPS, SERVICES = f"ou=people,{SUFFIX}", f"ou=groups,{SUFFIX}", f"ou=services,{SUFFIX}"
# The account campaignkit binds as: it may change group memberships and nothing else.
SERVICE_DN, SERVICE_PASSWORD = f"uid=campaigns,{SERVICES}", "service-password-0123456789"
# An account that may read everything and change nothing.
READER_DN, READER_PASSWORD = f"uid=auditor,{SERVICES}", "reader-password-0123456789"

SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema")
SCHEMAS = ("core", "cosine", "inetorgperson")
# Debian and Ubuntu build back_mdb as a module; other distributions put modules elsewhere or link it in.
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/libexec/openldap")
START_TIMEOUT = 10.0


def user_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


def _missing(reason: str) -> None:
    message = f"{reason}: install Debian's slapd package (apt-get install slapd)"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {message}", pytrace=False)
    pytest.skip(message)


@dataclass(frozen=True)
class SlapdInstall:
    binary: Path
    schema_dir: Path
    module_dir: Path | None  # None: back_mdb is built into the binary


def find_slapd() -> SlapdInstall:
    found = os.environ.get("SLAPD") or shutil.which("slapd") or "/usr/sbin/slapd"
    if not Path(found).is_file():
        _missing(f"no slapd binary at {found} (from $SLAPD, else PATH, else /usr/sbin/slapd)")
    schema_dir = next((Path(d) for d in SCHEMA_DIRS if (Path(d) / "core.schema").is_file()), None)
    if schema_dir is None:
        _missing(f"no core.schema in {' or '.join(SCHEMA_DIRS)}")
    module_dir = next((Path(d) for d in MODULE_DIRS if any(Path(d).glob("back_mdb.*"))), None)
    return SlapdInstall(Path(found), schema_dir, module_dir)  # type: ignore[arg-type]  # _missing never returns


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


class Slapd:
    """One slapd process: plain LDAP (StartTLS possible) on ``port`` and LDAPS on ``tls_port``, both on loopback."""

    def __init__(self, install: SlapdInstall, folder: Path, certificates: Certificates, *, tls: bool = True) -> None:
        self.install = install
        self.folder = folder
        self.certificates = certificates
        self.tls = tls
        self.port = free_port()
        self.tls_port = free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.tls_url = f"ldaps://127.0.0.1:{self.tls_port}"
        self.log = folder / "slapd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False
        (folder / "data").mkdir(parents=True, exist_ok=True)
        self.config = folder / "slapd.conf"
        self.config.write_text(self._config_text(), encoding="utf-8")

    def _config_text(self) -> str:
        schemas = "\n".join(f"include {self.install.schema_dir / name}.schema" for name in SCHEMAS)
        modules = (f"modulepath {self.install.module_dir}\nmoduleload back_mdb\n"
                   if self.install.module_dir is not None else "")
        tls = (f"TLSCACertificateFile {self.certificates.ca}\nTLSCertificateFile {self.certificates.cert}\n"
               f"TLSCertificateKeyFile {self.certificates.key}\n" if self.tls else "")
        return f"""{schemas}
{modules}pidfile {self.folder / "slapd.pid"}
argsfile {self.folder / "slapd.args"}
{tls}

database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {self.folder / "data"}
access to attrs=userPassword
    by self read
    by anonymous auth
    by * none
access to dn.subtree="{GROUPS}" attrs=member,uniqueMember
    by dn.exact="{SERVICE_DN}" write
    by * read
access to *
    by * read
"""

    def start(self) -> None:
        """Start and wait until it answers; a slapd that exits or never answers fails the test with its log."""
        with self.log.open("ab") as log:
            # -d stats: stay in the foreground (so that the test owns the process) and log each operation.
            self.process = subprocess.Popen(
                [str(self.install.binary), "-f", str(self.config), "-h", " ".join(self.listeners()), "-d", "stats"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"slapd exited with {self.process.returncode} at start (on Ubuntu, AppArmor's slapd "
                            f"profile may forbid {self.folder}):\n{self.log_tail()}", pytrace=False)
            try:
                with self.admin() as conn:
                    conn.search("", "(objectClass=*)", BASE)  # the root DSE: there before any data
                    return
            except LDAPCommunicationError:  # not listening yet
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"slapd did not answer within {START_TIMEOUT}s:\n{self.log_tail()}", pytrace=False)
                time.sleep(0.02)

    def listeners(self) -> list[str]:
        return [f"{self.url}/", f"{self.tls_url}/"] if self.tls else [f"{self.url}/"]

    def stop(self) -> None:
        if self.process is None:
            return
        if self.paused:
            self.resume()
        self.process.terminate()  # SIGTERM: slapd closes the database cleanly
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def pause(self) -> None:
        """Freeze slapd: the kernel still accepts connections, nothing answers them (a hung server)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- the directory, read and written as an administrator would ---------------------------------------------

    def admin(self) -> Connection:
        return Connection(Server("127.0.0.1", port=self.port, connect_timeout=2), user=ROOT_DN,
                          password=ROOT_PASSWORD, auto_bind=True, receive_timeout=5, raise_exceptions=True)

    def seed(self) -> None:
        with self.admin() as conn:
            conn.add(SUFFIX, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
            for ou in (PEOPLE, GROUPS, SERVICES):
                conn.add(ou, ["organizationalUnit"], {"ou": ou.split(",")[0].split("=")[1]})
            for dn, password in ((SERVICE_DN, SERVICE_PASSWORD), (READER_DN, READER_PASSWORD)):
                uid = dn.split(",")[0].split("=")[1]
                conn.add(dn, ["inetOrgPerson"], {"uid": uid, "cn": uid, "sn": uid, "userPassword": password})

    def add_user(self, uid: str) -> str:
        dn = f"uid={escape_rdn(uid)},{PEOPLE}"
        with self.admin() as conn:
            conn.add(dn, ["inetOrgPerson"], {"uid": uid, "cn": uid, "sn": uid, "mail": f"{uid}@example.org"})
        return dn

    def add_group(self, cn: str, members: Iterable[str], *, unique: bool = False) -> str:
        dn = group_dn(cn)
        object_class, attribute = ("groupOfUniqueNames", "uniqueMember") if unique else ("groupOfNames", "member")
        with self.admin() as conn:
            conn.add(dn, [object_class], {"cn": cn, attribute: list(members)})
        return dn

    def members(self, dn: str, attribute: str = "member") -> set[str]:
        """The group's members as slapd stores them, lower-cased (DN comparison is case-insensitive here)."""
        with self.admin() as conn:
            conn.search(dn, "(objectClass=*)", BASE, attributes=[attribute])
            return {str(value).lower() for value in conn.entries[0][attribute].values}


@pytest.fixture(scope="session")
def slapd_install() -> SlapdInstall:
    return find_slapd()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A private CA and a certificate for 127.0.0.1 that it signed."""
    import trustme

    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    paths = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    ca.cert_pem.write_to_path(str(paths.ca))
    issued.cert_chain_pems[0].write_to_path(str(paths.cert))
    issued.private_key_pem.write_to_path(str(paths.key))
    return paths


@pytest.fixture
def make_slapd(slapd_install: SlapdInstall, certificates: Certificates, tmp_path: Path) -> Iterator[Any]:
    """Start seeded slapd servers (``tls=False``: one without certificates); all are stopped and waited for."""
    started: list[Slapd] = []

    def make(*, tls: bool = True) -> Slapd:
        server = Slapd(slapd_install, tmp_path / f"slapd-{len(started)}", certificates, tls=tls)
        started.append(server)
        server.start()
        server.seed()
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def slapd(make_slapd: Any) -> Slapd:
    """A started, seeded slapd of this test alone, with TLS."""
    return make_slapd()  # type: ignore[no-any-return]


def action_config(server: Slapd, **overrides: Any) -> dict[str, Any]:
    """The plugins.config.ldap_group table that points the action at ``server`` as the service account."""
    return {"url": server.url, "bind_dn": SERVICE_DN, "bind_password": SERVICE_PASSWORD, "base_dn": PEOPLE,
            "groups": {"Git": group_dn("git-users")}, "timeout_seconds": 2, "connect_timeout_seconds": 2,
            **overrides}
