"""A private OpenLDAP `slapd` for the tests: MDB database loaded offline, on a free port.

The directory (suffix dc=example,dc=org):
- ou=people: PEOPLE generated inetOrgPerson entries uid=user00001 … (departmentNumber
  d0…d9; every 7th has a second mail; every 100th has no mail)
- ou=staff: the login users of STAFF (password "pw-<uid>"), and ou=groups: one
  groupOfNames per role holding them
- cn=nomaflow,ou=services: the service account the app binds as
- cn=Monitor: slapd's own counters (the tests count open connections)

A size limit of 1000 entries per plain search (paged searches are unlimited) proves
that paging is used. Runs as root from a temp directory with slapd.conf (no cn=config
conversion needed, nothing in /etc touched).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ldap3 import BASE, NONE, Connection, Server
from ldap3.core.exceptions import LDAPException

from .processes import Process, free_port, test_env, wait_for

SUFFIX = "dc=example,dc=org"
ROOT_DN, ROOT_PW = f"cn=admin,{SUFFIX}", "admin-secret"
SERVICE_DN, SERVICE_PW = f"cn=nomaflow,ou=services,{SUFFIX}", "service-secret"
PEOPLE = 5000
# uid → roles (groups) at load time.
STAFF = {"alice": ["viewer"], "bob": ["operator"], "carol": ["editor"], "dave": [], "erin": ["operator"]}

CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {dir}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload back_monitor
sizelimit size.soft=1000 size.hard=1000 size.pr=1000 size.prtotal=unlimited

database mdb
maxsize 1073741824
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_pw}
directory {dir}/data
index objectClass,uid,member eq
access to attrs=userPassword by self read by anonymous auth by * none
access to * by users read by * none

database monitor
access to * by dn.exact="{root_dn}" read by * none
"""


@dataclass(frozen=True)
class LdapServer:
    url: str
    process: Process
    workdir: Path

    def admin(self) -> Connection:
        return Connection(Server(self.url, get_info=NONE), ROOT_DN, ROOT_PW, auto_bind=True, raise_exceptions=True)

    def open_connections(self) -> int:
        """Client connections slapd has open now, not counting the one asking."""
        with self.admin() as conn:
            conn.search("cn=Current,cn=Connections,cn=Monitor", "(objectClass=*)", BASE, attributes=["monitorCounter"])
            return int(conn.response[0]["raw_attributes"]["monitorCounter"][0]) - 1

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Freeze slapd (SIGSTOP): connections open, but no request gets an answer."""
        self.process.kill(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.kill(signal.SIGCONT)


def people_ldif() -> Iterator[str]:
    yield f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n"
    for ou in ("people", "staff", "groups", "services"):
        yield f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n"
    yield (
        f"dn: {SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n"
        f"cn: nomaflow\nuserPassword: {SERVICE_PW}\n"
    )
    for n in range(1, PEOPLE + 1):
        uid = f"user{n:05d}"
        lines = [
            f"dn: uid={uid},ou=people,{SUFFIX}", "objectClass: inetOrgPerson", f"uid: {uid}",
            f"cn: Person {n}", f"sn: Number{n}", "givenName: Person", f"departmentNumber: d{n % 10}",
        ]  # fmt: skip
        if n % 100:
            lines.append(f"mail: {uid}@example.org")
        if n % 7 == 0 and n % 100:
            lines.append(f"mail: {uid}@alias.example.org")
        yield "\n".join(lines) + "\n"
    for uid in STAFF:
        yield (
            f"dn: uid={uid},ou=staff,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid.title()} Staff\n"
            f"sn: Staff\ngivenName: {uid.title()}\nmail: {uid}@example.org\nuserPassword: pw-{uid}\n"
        )
    for role in ("viewer", "operator", "editor"):
        members = [uid for uid, roles in STAFF.items() if role in roles]
        yield f"dn: cn={role},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {role}\n" + "".join(
            f"member: uid={uid},ou=staff,{SUFFIX}\n" for uid in members
        )


def start_slapd() -> LdapServer:
    """Generate the config and data, load them with slapadd, start slapd, wait for a bind."""
    for tool in ("slapd", "slapadd"):
        if not Path(f"/usr/sbin/{tool}").exists():
            raise RuntimeError(f"/usr/sbin/{tool} is missing: `make test` installs Debian's slapd and ldap-utils")
    workdir = Path(tempfile.mkdtemp(prefix="nomaflow-slapd-"))
    (workdir / "data").mkdir()
    config = workdir / "slapd.conf"
    config.write_text(CONFIG.format(dir=workdir, suffix=SUFFIX, root_dn=ROOT_DN, root_pw=ROOT_PW))
    ldif = workdir / "data.ldif"
    ldif.write_text("\n".join(people_ldif()))
    subprocess.run(
        ["/usr/sbin/slapadd", "-q", "-f", str(config), "-l", str(ldif)], check=True, capture_output=True, text=True
    )
    url = f"ldap://127.0.0.1:{free_port()}"
    # -d 0: stay in the foreground (a child we can stop) without debug output.
    process = Process(["/usr/sbin/slapd", "-f", str(config), "-h", f"{url}/", "-d", "0"], test_env(), "slapd")
    server = LdapServer(url, process, workdir)

    def ready() -> bool:
        if process.proc.poll() is not None:
            raise AssertionError(f"slapd exited with {process.proc.returncode}:\n{process.output()[-3000:]}")
        try:
            server.admin().unbind()
        except LDAPException:
            return False
        return True

    wait_for(ready, timeout=30, interval=0.05, what="slapd to accept a bind")
    return server


def stop_slapd(server: LdapServer) -> None:
    server.process.kill(signal.SIGCONT)  # in case a test left it paused
    server.process.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)
