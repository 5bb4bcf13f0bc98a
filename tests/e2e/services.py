"""Real third-party servers the tests talk to: OpenLDAP slapd and FreeRADIUS (RADIUS), nginx
and LemonLDAP::NG (the adapters).

Each runs in the foreground in a temporary directory on a free loopback port and is stopped
(by its own PID) when the context ends."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import httpx

from .helpers import free_port, stop, wait_for

LDAP_BASE = "dc=example,dc=org"
LDAP_ADMIN = f"cn=admin,{LDAP_BASE}"
LDAP_ADMIN_PASSWORD = "admin-secret"


class FreeRadius(NamedTuple):
    port: int
    pid: int


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def slapd(workdir: Path, users: dict[str, str]) -> Iterator[str]:
    """OpenLDAP with ``uid=NAME,ou=people,dc=example,dc=org`` entries; yields its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "db").mkdir()
    conf = workdir / "slapd.conf"
    conf.write_text(f"""
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {workdir}/slapd.pid
database mdb
maxsize 10485760
suffix "{LDAP_BASE}"
rootdn "{LDAP_ADMIN}"
rootpw {LDAP_ADMIN_PASSWORD}
directory {workdir}/db
""")
    port = free_port()
    url = f"ldap://127.0.0.1:{port}"
    log = (workdir / "slapd.log").open("wb")
    proc = subprocess.Popen(
        ["slapd", "-f", str(conf), "-h", url + "/", "-d", "0"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_tcp(port, proc)
        ldif = [
            f"dn: {LDAP_BASE}\nobjectClass: dcObject\nobjectClass: organization\n"
            "o: Example\ndc: example\n",
            f"dn: ou=people,{LDAP_BASE}\nobjectClass: organizationalUnit\nou: people\n",
        ]
        ldif += [
            f"dn: uid={name},ou=people,{LDAP_BASE}\nobjectClass: inetOrgPerson\n"
            f"uid: {name}\ncn: {name}\nsn: {name}\nuserPassword: {pw}\n"
            for name, pw in users.items()
        ]
        subprocess.run(
            ["ldapadd", "-x", "-H", url, "-D", LDAP_ADMIN, "-w", LDAP_ADMIN_PASSWORD],
            input="\n".join(ldif).encode(),
            check=True,
            capture_output=True,
        )
        yield url
    finally:
        stop(proc)
        log.close()


@contextmanager
def freeradius(
    workdir: Path,
    users: dict[str, str],
    secret: str = "upstream-secret",  # noqa: S107 - a test fixture, not a real secret
    threads: int = 4,
) -> Iterator[FreeRadius]:
    """FreeRADIUS answering PAP from a users file on a free loopback UDP port."""
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("log", "run"):
        (workdir / sub).mkdir(exist_ok=True)
    port = free_udp_port()
    (workdir / "dictionary").write_text("$INCLUDE /usr/share/freeradius/dictionary\n")
    (workdir / "users").write_text(
        "".join(f'{name} Cleartext-Password := "{pw}"\n' for name, pw in users.items())
    )
    (workdir / "radiusd.conf").write_text(f"""
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {workdir}/log
raddbdir = {workdir}
radacctdir = {workdir}/log
name = freeradius
confdir = {workdir}
modconfdir = {workdir}
run_dir = {workdir}/run
db_dir = {workdir}
libdir = /usr/lib/freeradius
pidfile = {workdir}/run/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no
log {{
    destination = stdout
    auth = no
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}}
thread pool {{
    start_servers = {threads}
    max_servers = {threads}
    min_spare_servers = 1
    max_spare_servers = {threads}
    max_requests_per_server = 0
    max_queue_size = 65536
}}
client local {{
    ipaddr = 127.0.0.1
    secret = {secret}
    require_message_authenticator = no
}}
modules {{
    pap {{
        normalise = yes
    }}
    files {{
        filename = {workdir}/users
    }}
}}
server default {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {port}
    }}
    authorize {{
        files
        pap
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
    }}
}}
""")
    log = (workdir / "freeradius.log").open("wb")
    proc = subprocess.Popen(
        ["freeradius", "-f", "-d", str(workdir), "-n", "radiusd"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    "freeradius exited: " + (workdir / "freeradius.log").read_text()
                )
            probe = subprocess.run(
                ["radclient", "-t", "0.5", "-r", "1", f"127.0.0.1:{port}", "status", secret],
                input=b"Message-Authenticator = 0x00\n",
                capture_output=True,
            )
            if b"Received" in probe.stdout:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    "freeradius did not answer: " + (workdir / "freeradius.log").read_text()
                )
        yield FreeRadius(port, proc.pid)
    finally:
        stop(proc)
        log.close()


def _wait_tcp(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


NGINX_HEAD = """daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {folder}/tmp; proxy_temp_path {folder}/tmp;
  fastcgi_temp_path {folder}/tmp; uwsgi_temp_path {folder}/tmp; scgi_temp_path {folder}/tmp;
"""


PROTECTED_SITE = """
  include {folder}/snippets/openmfa-upstream.conf;
  server {{
    listen 127.0.0.1:{port};
    server_name app.example.localhost;
    include {folder}/snippets/openmfa-location.conf;
    location / {{
      include {folder}/snippets/openmfa-authrequest.conf;
      proxy_pass http://127.0.0.1:{site};
    }}
  }}
"""
"""A site nginx protects with OpenMFA's forward-auth (``format(folder=, port=, site=)``): the
three files `openmfa adapter register nginx` writes in ``folder``/snippets included; nginx on
``port`` as app.example.localhost, the site behind it on ``site``."""


def nginx_conf(folder: Path, http: str) -> list[str]:
    """Write ``folder``/nginx.conf (nginx's own prefix ``folder``; ``http``: what its http
    block holds — server blocks, includes); returns the command that runs it."""
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_HEAD.format(folder=folder) + http + "\n}\n")
    return ["nginx", "-p", str(folder), "-c", str(conf)]


def nginx(folder: Path, http: str) -> subprocess.Popen[bytes]:
    """Debian's nginx in the foreground (``nginx_conf``), back once it answers on the first
    ``listen`` address; stop it with ``helpers.stop``."""
    proc = subprocess.Popen(
        nginx_conf(folder, http), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    port = int(http.split("listen 127.0.0.1:", 1)[1].split(";", 1)[0])
    try:
        _wait_tcp(port, proc)
    except BaseException:
        stop(proc)
        raise
    return proc


CLI = "/usr/share/lemonldap-ng/bin/lemonldap-ng-cli"
PSGI = "/usr/share/lemonldap-ng/portal/htdocs/index.psgi"
HOST = "auth.example.com"


@dataclass
class Idp:
    folder: Path
    port: int
    config: Path
    """adapter.toml"""

    def llng(self, *args: str) -> str:
        env = {**os.environ, "LLNG_DEFAULTCONFFILE": str(self.folder / "lemonldap-ng.ini")}
        proc = subprocess.run(
            [CLI, "-yes", "1", *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def sign_in(self, user: str, code: str | None) -> tuple[str, str, str]:
        """Password (LemonLDAP::NG's demo users: the password is the name), then ``code``
        (None: stop at the second step): (the second-factor form's action, the cookie set,
        LemonLDAP::NG's error number)."""
        base = f"http://127.0.0.1:{self.port}"
        with httpx.Client(base_url=base, headers={"Host": f"{HOST}:{self.port}"}) as c:
            page = c.get("/").text
            token = re.search(r'name="token" value="([^"]*)"', page)
            form = {"user": user, "password": user, "timezone": "0", "skin": "bootstrap"}
            if token:
                form["token"] = token.group(1)
            second = c.post("/", data=form)
            if second.status_code == 302:  # no second factor asked: the password alone did
                return "", second.headers.get("set-cookie", ""), ""
            assert second.status_code == 200 and "lemonldap" not in second.cookies, second.text
            action = re.search(r'<form[^>]*action="([^"?]*)', second.text)
            assert action is not None, second.text
            if code is None:
                return action.group(1), "", ""
            fields = dict(re.findall(r'<input[^>]*name="([^"]*)"[^>]*value="([^"]*)"', second.text))
            done = c.post(action.group(1), data={**fields, "code": code})
            error = re.search(r'trmsg="(\d+)"', done.text)
            return (
                action.group(1),
                done.headers.get("set-cookie", ""),
                error.group(1) if error else "",
            )


@contextmanager
def lemonldap() -> Iterator[Idp]:
    """Debian's LemonLDAP::NG portal under plackup on loopback, its configuration (the demo
    users: dwho, rtyler, msmith, each with their name as password) in a new folder."""
    if not Path(CLI).exists():
        raise AssertionError("run scripts/system-deps.sh: it installs lemonldap-ng")
    # LemonLDAP::NG's tool becomes www-data: its folder must be reachable by that user (pytest's
    # temporary folders are root's alone).
    folder = Path(tempfile.mkdtemp(prefix="openmfa-llng-"))
    (folder / "conf").mkdir()
    (folder / "cache").mkdir()
    shutil.copy("/var/lib/lemonldap-ng/conf/lmConf-1.json", folder / "conf")
    ini = Path("/etc/lemonldap-ng/lemonldap-ng.ini").read_text()
    ini = ini.replace("dirName = /var/lib/lemonldap-ng/conf", f"dirName = {folder}/conf")
    ini = ini.replace("/var/lib/lemonldap-ng/cache", f"{folder}/cache")
    (folder / "lemonldap-ng.ini").write_text(ini)
    www = pwd.getpwnam("www-data")
    for path in (folder, folder / "conf", folder / "cache", *folder.glob("conf/*")):
        os.chown(path, www.pw_uid, www.pw_gid)
    port = free_port()
    idp = Idp(folder, port, folder / "adapter.toml")
    idp.llng("set", "portal", f"http://{HOST}:{port}/")
    idp.llng("delKey", "reloadUrls", "localhost")  # no handler to tell: it reads every second
    log = folder / "portal.log"
    env = {**os.environ, "LLNG_DEFAULTCONFFILE": str(folder / "lemonldap-ng.ini")}
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["plackup", "--host", "127.0.0.1", "-p", str(port), PSGI],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
        )  # fmt: skip

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, "LemonLDAP::NG's portal", 60)
        yield idp
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
