"""The node takes its sockets from a service manager (socket activation, ``openmfa.activation``):
systemd's own ``systemd-socket-activate`` starts it on the first request, which it answers; a
manager that keeps the sockets over a restart (as systemd keeps a ``.socket`` unit's) gets a
request sent while no node runs answered by the next process, from its one send; and an upgrade's
restart of an activated node still holds its RADIUS socket over the switch (``radius.handoff``).
Judged by radclient (FreeRADIUS) with codes from oathtool."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from openmfa.node.control import SERVE_RECORD, Invocation, NodeControl
from openmfa.radius import handoff

from .helpers import OPENMFA, cli, free_port, init, oathtool, secret_of, wait_for
from .services import free_udp_port

SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"
SECRET = "activation-secret"
MANAGER = """\
import fcntl, os, sys
given = [int(fd) for fd in sys.argv[1].split(",")]
moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in given]  # out of the way of 3, 4, ...
for fd in given:
    os.close(fd)
for i, fd in enumerate(moved):
    os.dup2(fd, 3 + i)
    os.close(fd)
os.environ.update(
    LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(moved)), LISTEN_FDNAMES=sys.argv[2]
)
os.execv(sys.argv[3], sys.argv[3:])
"""
"""What systemd does between its fork and the exec of a socket-activated service: the sockets
at descriptors 3, 4, …, LISTEN_PID the process's own pid (kept by the exec), LISTEN_FDS how many,
LISTEN_FDNAMES their names. Arguments: the descriptors here, the names, the command."""


@dataclass
class Site:
    dd: Path
    seed: str
    used: int = 0

    def code(self) -> str:
        """The next HOTP code (RFC 4226), from oathtool: each is accepted once, in order."""
        self.used += 1
        return oathtool("--hotp", "-b", "-c", str(self.used - 1), self.seed)

    def env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "OPENMFA_DATA_DIR": str(self.dd)}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    dd = tmp_path_factory.mktemp("activation") / "node"
    dd.mkdir()
    init(dd)
    cli(dd, "user", "add", "ann")
    seed = secret_of(cli(dd, "method", "add", "ann", "hotp", "--no-qr").stdout)
    cli(dd, "radius", "client", "add", "gw", "--address", "127.0.0.1/32", "--secret", SECRET)
    return Site(dd, seed)


def radclient(port: int, user: str, code: str, timeout: int = 60) -> subprocess.Popen[str]:
    """One Access-Request (sent once more after ``timeout`` seconds without an answer), in the
    background: ``reply`` reads what came back."""
    proc = subprocess.Popen(
        ["radclient", "-x", "-t", str(timeout), "-r", "2", f"127.0.0.1:{port}", "auth", SECRET],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(
        f'User-Name = "{user}"\nUser-Password = "{code}"\nMessage-Authenticator = 0x00\n'
    )
    proc.stdin.close()
    return proc


def reply(proc: subprocess.Popen[str]) -> tuple[str | None, int]:
    """(the answer's type, or None; how many times the request was sent)."""
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait(timeout=60)
    proc.stdout.close()
    got = re.search(r"^Received (\S+) Id", out, re.M)
    return (got.group(1) if got else None), len(re.findall(r"^Sent Access-Request", out, re.M))


def ask(port: int, user: str, code: str) -> tuple[str | None, int]:
    return reply(radclient(port, user, code))


def queued(sock: socket.socket) -> bool:
    """Does a datagram wait in ``sock``'s queue (read by nobody yet)?"""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False


def ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> bool:
    assert proc.poll() is None, log.read_text()
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not Path(SOCKET_ACTIVATE).exists(), reason="needs systemd-socket-activate")
def test_socket_activate_starts_the_node_on_the_first_request_and_an_upgrade_keeps_the_socket(
    site: Site,
) -> None:
    radius, http = free_udp_port(), free_port()
    log = site.dd / "socket-activate.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [SOCKET_ACTIVATE, "--datagram", "-l", f"127.0.0.1:{radius}", "--fdname=radius",
             "-E", f"OPENMFA_DATA_DIR={site.dd}",
             OPENMFA, "serve", "--listen", f"127.0.0.1:{http}"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    control = NodeControl(site.dd)
    try:
        wait_for(lambda: f"Listening on 127.0.0.1:{radius}" in log.read_text(), "it listens")
        assert control.pid() is None  # no node yet: it starts on the first request
        # the request that starts the node is answered, from its one send
        assert ask(radius, "ann", site.code()) == ("Access-Accept", 1)
        assert ask(radius, "ann", "12345") == ("Access-Reject", 1)  # not even six digits
        text = log.read_text()
        assert f"RADIUS on udp 127.0.0.1:{radius} (from the service manager)" in text
        assert "[radius] listen (or --radius-listen) says 127.0.0.1:1812, which is not used" in (
            text
        )
        assert "Traceback" not in text
        # `openmfa upgrade` restarts a node no unit runs itself: the node hands over the socket
        # it was given, and is started again where it was (its record names the address).
        how = Invocation.load(site.dd / SERVE_RECORD)
        assert how is not None and how.unit == "" and how.radius == f"127.0.0.1:{radius}"
        assert how.argv[-2:] == ["--radius-listen", f"127.0.0.1:{radius}"]
        assert not {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} & set(how.env)
        held = handoff.take(site.dd)
        assert held is not None and held.getsockname() == ("127.0.0.1", radius)
        try:
            ahead = control.start_ahead(Path(OPENMFA), radius=held)
            assert ahead is not None
            control.stop()
            proc.wait(timeout=30)
            sent = radclient(radius, "ann", site.code())
            wait_for(lambda: queued(held), "the request waits in the socket held")
            assert control.start(Path(OPENMFA), radius=held, ahead=ahead) == ahead.proc.pid
        finally:
            held.close()
        assert reply(sent) == ("Access-Accept", 1)
        assert (
            "went on with the socket the restart held" in (site.dd / control.log_name).read_text()
        )
        again = Invocation.load(site.dd / SERVE_RECORD)
        assert again is not None and again.radius == how.radius
        control.stop()
        ahead.proc.wait(timeout=30)
    finally:
        stop(proc)
        if control.pid() is not None:
            control.stop()


def test_a_request_sent_while_the_node_restarts_is_answered(site: Site) -> None:
    """The test is the service manager: it binds the sockets once and passes them to each
    process it starts, as systemd passes a .socket unit's on ``systemctl restart``."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with udp, tcp:
        udp.bind(("127.0.0.1", 0))
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(64)
        radius, url = udp.getsockname()[1], f"http://127.0.0.1:{tcp.getsockname()[1]}"
        log = site.dd / "managed.log"
        fds = (udp.fileno(), tcp.fileno())

        def start() -> subprocess.Popen[bytes]:
            with log.open("a") as out:
                return subprocess.Popen(
                    [sys.executable, "-c", MANAGER, ",".join(map(str, fds)), "radius:http",
                     OPENMFA, "serve"],
                    pass_fds=fds, env=site.env(), stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip

        node = start()
        try:
            wait_for(lambda: ready(node, url, log), "the node answers on the SDK socket passed")
            assert ask(radius, "ann", site.code()) == ("Access-Accept", 1)
            stop(node)
            assert node.returncode == 0, log.read_text()
            # no node runs: the request and an SDK connection wait in the sockets kept
            sent = radclient(radius, "ann", site.code())
            wait_for(lambda: queued(udp), "the request waits in the socket kept")
            early = socket.create_connection(tcp.getsockname(), timeout=30)
            early.sendall(b"GET /readyz HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
            node = start()
            assert reply(sent) == ("Access-Accept", 1)  # from its one send
            with early:
                assert early.recv(64).startswith(b"HTTP/1.1 200")
            text = log.read_text()
            assert text.count(f"RADIUS on udp 127.0.0.1:{radius} (from the service manager)") == 2
            assert text.count(f"SDK on {url} (from the service manager)") == 2
        finally:
            stop(node)
        assert node.returncode == 0, log.read_text()


def test_sockets_the_node_cannot_use_are_one_line_not_a_traceback(site: Site) -> None:
    """What the admin sees (stderr, exit status 1) when the unit passes the wrong thing."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with tcp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        cases = [
            (["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=x exec "$0" serve', OPENMFA], (),
             "error: LISTEN_FDS='x' from the service manager is not a number of sockets"),
            ([sys.executable, "-c", MANAGER, str(tcp.fileno()), "radius", OPENMFA, "serve"],
             (tcp.fileno(),),
             "error: the socket named radius (descriptor 3) is a TCP socket, but RADIUS is UDP: "
             "use ListenDatagram= (like ListenDatagram=1812) in the .socket unit"),
        ]  # fmt: skip
        for argv, fds, said in cases:
            out = subprocess.run(
                argv, pass_fds=fds, env=site.env(), capture_output=True, text=True, timeout=60
            )
            assert out.returncode == 1, out
            (line,) = out.stderr.splitlines()  # one line, no traceback
            assert line.startswith(said), line
