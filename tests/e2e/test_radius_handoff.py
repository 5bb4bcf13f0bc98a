"""A node restarted in place keeps its RADIUS port: a request that arrives while no node runs is
answered by the next process, from its one send (``radius.handoff``; the upgrader does this
around its switch)."""

from __future__ import annotations

import base64
import os
import socket
import time
from pathlib import Path

import pytest

from openmfa.core.totp import totp
from openmfa.node.control import NodeControl
from openmfa.radius import handoff
from openmfa.radius import packet as p

from .helpers import OPENMFA, cli, init, secret_of, server, wait_for
from .services import free_udp_port

SECRET = b"handoff-secret"


def access_request(user: str, code: str) -> tuple[bytes, bytes]:
    auth = os.urandom(16)
    attrs = [
        (p.USER_NAME, user.encode()),
        (p.USER_PASSWORD, p.hide_password(code.encode(), SECRET, auth)),
    ]
    return p.encode_request(p.ACCESS_REQUEST, 7, attrs, SECRET, auth), auth


def answer(s: socket.socket, auth: bytes, seconds: float) -> p.Packet | None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            data, _ = s.recvfrom(4096)
        except TimeoutError:
            return None
        try:
            return p.verify_response(data, auth, SECRET)
        except p.MalformedPacket:
            continue
    return None


# NodeControl.start leaves the node running on its own (as `openmfa upgrade` does when it exits);
# here the test process outlives the Popen object, and the test stops the node itself.
@pytest.mark.filterwarnings("ignore:subprocess .* is still running:ResourceWarning")
def test_a_request_sent_while_the_node_restarts_is_answered_from_its_one_send(
    tmp_path: Path,
) -> None:
    dd = tmp_path / "node"
    dd.mkdir()
    init(dd)
    cli(dd, "user", "add", "ivy")
    seed = secret_of(cli(dd, "method", "add", "ivy", "totp", "--no-qr").stdout)
    cli(
        dd,
        "radius",
        "client",
        "add",
        "nas",
        "--address",
        "127.0.0.1/32",
        "--secret",
        SECRET.decode(),
    )
    port = free_udp_port()
    control = NodeControl(dd)
    assert handoff.take(dd) is None  # no node runs: nothing is offered
    offered: list[socket.socket] = []

    def take() -> bool:
        s = handoff.take(dd)
        offered.extend([s] if s is not None else [])
        return s is not None

    nas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with server(dd, radius=f"127.0.0.1:{port}") as srv, nas:
        try:
            wait_for(take, "the node offers its RADIUS socket")
            held = offered[0]
            assert held.getsockname() == ("127.0.0.1", port)
            # as the upgrader does: the next process starts ahead and waits at its gate
            ahead = control.start_ahead(Path(OPENMFA), radius=held)
            assert ahead is not None
            control.stop()
            srv.proc.wait(timeout=30)  # no node runs now; the port is held
            raw, auth = access_request("ivy", totp(b32(seed), time.time()))
            nas.sendto(raw, ("127.0.0.1", port))  # once: no retransmission
            sent = time.monotonic()
            try:
                pid = control.start(Path(OPENMFA), radius=held, ahead=ahead)
            finally:
                held.close()
            assert pid == ahead.proc.pid
            got = answer(nas, auth, 30)
            assert got is not None and got.code == p.ACCESS_ACCEPT
            print(f"answered {time.monotonic() - sent:.2f} s after it was sent, no node running")
            log = (dd / control.log_name).read_text()
            assert "went on with the socket the restart held" in log
            # the new process offers it in turn (for the next restart)
            assert take()
            offered[1].close()
            # a process started ahead and never let go leaves without touching anything
            spare = control.start_ahead(Path(OPENMFA))
            assert spare is not None
            spare.cancel()
            assert spare.proc.returncode == 0 and control.pid() == pid
        finally:
            control.stop()


def b32(seed: str) -> bytes:
    return base64.b32decode(seed.upper() + "=" * (-len(seed) % 8))


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_another_user_is_not_given_the_socket(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    dd.mkdir()
    init(dd)
    port = free_udp_port()
    with server(dd, radius=f"127.0.0.1:{port}"):
        wait_for(lambda: _take_as(dd, None) == "yes", "the node offers its socket to its user")
        assert _take_as(dd, 65534) == "no"


def _take_as(dd: Path, uid: int | None) -> str:
    """``handoff.take`` in a child process, as ``uid`` (forked: it needs no file to read)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, whatever happens
        said = b"error"
        try:
            if uid is not None:
                os.setgid(uid)
                os.setuid(uid)
            s = handoff.take(dd)
            said = b"yes" if s is not None else b"no"
        finally:
            os.write(w, said)
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as got:
        said = got.read().decode()
    os.waitpid(pid, 0)
    return said
