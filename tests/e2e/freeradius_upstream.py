"""A real FreeRADIUS 3 as the upstream RADIUS server that holds the passwords, and eapol_test
(wpa_supplicant's EAP peer) as the judge of EAP conversations.

``freeradius_upstream`` answers PAP, MS-CHAPv2 without EAP (RFC 2548: MS-CHAP-Challenge and
MS-CHAP2-Response in; MS-CHAP2-Success and MS-MPPE-Send/Recv-Key out), EAP-PEAP with
EAP-MSCHAPv2 inside, EAP-TTLS with PAP inside and EAP-TLS (client certificates from the same
test CA: ``Upstream.client_certificate``), from its own configuration directory
(``freeradius_upstream.conf``; nothing under /etc/freeradius is read or changed) on a free
loopback UDP port, with a test CA and server certificate made per run. An EAP Access-Accept
carries the INNER user name in User-Name. The process is stopped by its PID.

``run_eapol_test`` drives one EAP conversation: eapol_test prints ``MPPE keys OK: N  mismatch:
M`` after comparing the MSK it derived itself with the MS-MPPE-Recv/Send-Key of the
Access-Accept, decrypted with the shared secret it was given (RFC 2548 §2.4.2-2.4.3) — so an
Access-Accept whose keys were not re-encrypted for that secret fails it."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .helpers import stop
from .services import free_udp_port

TEMPLATE = Path(__file__).with_name("freeradius_upstream.conf")
EapMethod = Literal["peap", "ttls-pap", "tls"]


@dataclass
class Upstream:
    port: int
    secret: str
    pid: int
    workdir: Path
    ca: Path
    """The test CA that signed the server's certificate (a supplicant's ``ca_cert``)."""

    def log(self) -> str:
        """What FreeRADIUS wrote so far (for a failing test's message)."""
        return (self.workdir / "freeradius.log").read_text(errors="replace")

    def client_certificate(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) of a client certificate for ``name`` (its CN) signed by the test
        CA, which the upstream's EAP-TLS trusts; made once."""
        return make_client_certificate(self.ca.parent, name)


def make_certificates(folder: Path) -> Path:
    """A small CA and a server certificate it signed (ECDSA P-256: made in milliseconds), in
    ``folder``; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
        "-subj", "/CN=OpenMFA test upstream CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=radius.test")
    (folder / "server.ext").write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:radius.test\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "3", "-extfile", "server.ext",
    )  # fmt: skip
    return folder


def make_client_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """(certificate, key) for ``name`` signed by ``folder``'s CA (``make_certificates``)."""
    stem = "client-" + "".join(c if c.isalnum() else "_" for c in name)
    cert, key = folder / f"{stem}.pem", folder / f"{stem}.key"
    if cert.exists():
        return cert, key
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subprocess.run(
        ["openssl", "req", *ec, "-keyout", key.name, "-out", f"{stem}.csr", "-subj", f"/CN={name}"],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip
    (folder / f"{stem}.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=clientAuth\n"
    )
    subprocess.run(
        ["openssl", "x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", cert.name, "-days", "3", "-extfile", f"{stem}.ext"],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def users_file(users: dict[str, str], reply: dict[str, str] | None) -> str:
    """FreeRADIUS's ``users`` file: each user's Cleartext-Password (PAP, MS-CHAP and the
    tunnels all check it) and the same ``reply`` attributes for each."""
    lines = []
    for name, password in users.items():
        lines.append(f"{_quoted(name)} Cleartext-Password := {_quoted(password)}")
        items = [f"\t{attr} := {_quoted(value)}" for attr, value in (reply or {}).items()]
        if items:
            lines.append(",\n".join(items))
    return "\n".join(lines) + "\n"


@contextmanager
def freeradius_upstream(
    workdir: Path,
    users: dict[str, str],
    secret: str = "upstream-secret",  # noqa: S107 - a test fixture, not a real secret
    threads: int = 4,
    *,
    reply: dict[str, str] | None = None,
    debug: bool = False,
) -> Iterator[Upstream]:
    """FreeRADIUS on a free 127.0.0.1 UDP port holding ``users`` (name → password); ``reply``:
    attributes every accepted user gets (e.g. Class, Filter-Id, Session-Timeout; through a
    tunnel too); ``debug``: FreeRADIUS's debug output in the log (slower)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("log", "run"):
        (workdir / sub).mkdir(exist_ok=True)
    certs = make_certificates(workdir / "certs")
    port = free_udp_port()
    (workdir / "dictionary").write_text("$INCLUDE /usr/share/freeradius/dictionary\n")
    (workdir / "users").write_text(users_file(users, reply))
    conf = TEMPLATE.read_text()
    for key, value in {
        "WORKDIR": str(workdir),
        "SECRET": secret,
        "PORT": str(port),
        "THREADS": str(threads),
    }.items():
        conf = conf.replace(f"@{key}@", value)
    (workdir / "radiusd.conf").write_text(conf)
    log = (workdir / "freeradius.log").open("wb")
    flags = ["-xx"] if debug else []
    proc = subprocess.Popen(
        ["freeradius", "-f", *flags, "-d", str(workdir), "-n", "radiusd"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    upstream = Upstream(port, secret, proc.pid, workdir, certs / "ca.pem")
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise AssertionError("freeradius exited: " + upstream.log())
            probe = subprocess.run(
                ["radclient", "-t", "0.5", "-r", "1", f"127.0.0.1:{port}", "status", secret],
                input=b"Message-Authenticator = 0x00\n",
                capture_output=True,
                timeout=10,
            )
            if b"Received" in probe.stdout:
                break
            if time.monotonic() > deadline:
                raise AssertionError("freeradius did not answer: " + upstream.log())
        yield upstream
    finally:
        stop(proc)
        log.close()


def eapol_test_conf(
    path: Path,
    method: EapMethod,
    identity: str,
    password: str,
    anonymous_identity: str = "anonymous",
    *,
    ca_cert: Path | None = None,
    client_cert: tuple[Path, Path] | None = None,
) -> Path:
    """A wpa_supplicant network block for eapol_test: PEAP with EAP-MSCHAPv2 inside, or
    EAP-TTLS with PAP inside (the outer identity ``anonymous_identity``, the inner one
    ``identity``), or EAP-TLS with ``client_cert`` (certificate, key; ``identity`` is the only
    identity, ``password`` unused). With ``ca_cert`` the server's certificate is checked."""
    lines = ['ssid="openmfa-test"', "key_mgmt=WPA-EAP"]
    if method == "tls":
        assert client_cert is not None, "EAP-TLS needs a client certificate"
        lines += [
            "eap=TLS",
            f"identity={_quoted(identity)}",
            f"client_cert={_quoted(str(client_cert[0]))}",
            f"private_key={_quoted(str(client_cert[1]))}",
        ]
    else:
        outer, phase2 = {"peap": ("PEAP", "auth=MSCHAPV2"), "ttls-pap": ("TTLS", "auth=PAP")}[
            method
        ]
        lines += [
            f"eap={outer}",
            f"identity={_quoted(identity)}",
            f"anonymous_identity={_quoted(anonymous_identity)}",
            f"password={_quoted(password)}",
            f'phase2="{phase2}"',
        ]
    if method == "peap":
        lines.append('phase1="peaplabel=0"')
    if ca_cert is not None:
        lines.append(f"ca_cert={_quoted(str(ca_cert))}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("network={\n" + "".join(f"    {line}\n" for line in lines) + "}\n")
    return path


@dataclass
class EapolResult:
    returncode: int
    stdout: str
    success: bool
    """eapol_test's verdict: an Access-Accept whose MPPE keys match the MSK it derived."""
    mppe_ok: bool
    """``MPPE keys OK: 1  mismatch: 0``."""
    accept: dict[str, list[str]]
    """The Access-Accept's attributes as eapol_test printed them (name → values), empty when
    there was none: ``accept["User-Name"]`` is the name the server authenticated."""
    access_requests: int
    """How many Access-Requests eapol_test sent (retransmissions included)."""


SENT = re.compile(r"^Sending RADIUS message to authentication server", re.M)
MPPE = re.compile(r"^MPPE keys OK: (\d+)\s+mismatch: (\d+)", re.M)
MESSAGE = re.compile(r"^RADIUS message: code=(\d+) \((\S+)\)", re.M)
ATTRIBUTE = re.compile(r"^\s+Attribute (\d+) \(([^)]*)\) length=\d+\n(?:\s+Value: (.*)\n)?", re.M)


def accept_attributes(stdout: str) -> dict[str, list[str]]:
    """The attributes of the last Access-Accept in eapol_test's output."""
    found = [m for m in MESSAGE.finditer(stdout) if m.group(2) == "Access-Accept"]
    if not found:
        return {}
    start = found[-1].end()
    after = MESSAGE.search(stdout, start)
    block = stdout[start : after.start() if after else len(stdout)]
    attrs: dict[str, list[str]] = {}
    for m in ATTRIBUTE.finditer(block):
        value = (m.group(3) or "").strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        name = m.group(2) if m.group(2) != "?Unknown?" else f"Attr-{m.group(1)}"
        attrs.setdefault(name, []).append(value)
    return attrs


def run_eapol_test(
    conf: Path,
    port: int,
    secret: str,
    timeout_s: float,
    *,
    extra: tuple[str, ...] = (),
) -> EapolResult:
    """One EAP conversation by eapol_test against 127.0.0.1:``port``; ``timeout_s`` is its
    ``-t`` (make it longer than any push hold); the process is given 15 s more before it is
    killed."""
    timeout = max(1, int(timeout_s + 0.999))
    try:
        proc = subprocess.run(
            ["eapol_test", "-c", str(conf), "-a", "127.0.0.1", "-p", str(port),
             "-s", secret, "-t", str(timeout), *extra],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout + 15,
        )  # fmt: skip
    except subprocess.TimeoutExpired as e:
        out = e.stdout if isinstance(e.stdout, str) else (e.stdout or b"").decode(errors="replace")
        return EapolResult(-1, out, False, False, {}, 0)
    out = proc.stdout
    mppe = MPPE.search(out)
    verdict = out.rstrip().rsplit("\n", 1)[-1].strip()
    return EapolResult(
        returncode=proc.returncode,
        stdout=out,
        success=proc.returncode == 0 and verdict == "SUCCESS",
        mppe_ok=bool(mppe and int(mppe.group(1)) >= 1 and int(mppe.group(2)) == 0),
        accept=accept_attributes(out),
        access_requests=len(
            re.findall(r"^Sending RADIUS message to authentication server", out, re.M)
        ),
    )
