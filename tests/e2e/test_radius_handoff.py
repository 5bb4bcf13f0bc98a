"""A node restarted in place keeps its RADIUS port: a request that arrives while no node runs is
answered by the next process, from its one send (``radius.handoff``; the upgrader does this
around its switch); the next process also finishes the challenges the old one opened and
answers retransmissions as the old one did (``radius.carry``)."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from openmfa.core.totp import totp
from openmfa.node.control import NodeControl
from openmfa.radius import carry, handoff
from openmfa.radius import packet as p

from .helpers import OPENMFA, cli, init, secret_of, server, wait_for
from .services import free_udp_port

SECRET = b"handoff-secret"


def access_request(user: str, code: str, state: bytes | None = None) -> tuple[bytes, bytes]:
    auth = os.urandom(16)
    attrs = [
        (p.USER_NAME, user.encode()),
        (p.USER_PASSWORD, p.hide_password(code.encode(), SECRET, auth)),
    ]
    attrs += [(p.STATE, state)] if state is not None else []
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
    seeds = {}
    for user in ("ivy", "jo", "kim"):
        cli(dd, "user", "add", user)
        seeds[user] = b32(secret_of(cli(dd, "method", "add", user, "totp", "--no-qr").stdout))
    set_password = [OPENMFA, "user", "set-password", "jo", "--password-stdin", "--data-dir"]
    subprocess.run([*set_password, str(dd)], input="jo-password\n", text=True, check=True)
    for name, address, primary in (("nas", "127.0.0.1", "none"), ("gw", "127.0.0.2", "local")):
        cli(dd, "radius", "client", "add", name, "--address", f"{address}/32",
            "--secret", SECRET.decode(), "--primary", primary)  # fmt: skip
    port = free_udp_port()
    control = NodeControl(dd)
    assert handoff.take(dd) is None  # no node runs: nothing is offered
    offered: list[socket.socket] = []

    def take() -> bool:
        s = handoff.take(dd)
        offered.extend([s] if s is not None else [])
        return s is not None

    nas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gw.bind(("127.0.0.2", 0))  # a gateway that checks the password first, then asks for a code
    to = ("127.0.0.1", port)
    with server(dd, radius=f"127.0.0.1:{port}") as srv, nas, gw:
        try:
            wait_for(take, "the node offers its RADIUS socket")
            held = offered[0]
            assert held.getsockname() == to
            # Before the restart: a sign-in answered (its retransmission will come after) and
            # a challenge opened (its follow-up will come after).
            answered, answered_auth = access_request("kim", totp(seeds["kim"], time.time()))
            nas.sendto(answered, to)
            first = answer(nas, answered_auth, 30)
            assert first is not None and first.code == p.ACCESS_ACCEPT
            raw, auth = access_request("jo", "jo-password")
            gw.sendto(raw, to)
            challenged = answer(gw, auth, 30)
            assert challenged is not None and challenged.code == p.ACCESS_CHALLENGE
            state = challenged.get(p.STATE)
            assert state is not None
            # as the upgrader does: the next process starts ahead and waits at its gate
            ahead = control.start_ahead(Path(OPENMFA), radius=held)
            assert ahead is not None
            control.stop()
            srv.proc.wait(timeout=30)  # no node runs now; the port is held
            carried = dd / carry.FILE  # what it left to the next process, sealed, 0600
            assert carried.stat().st_mode & 0o777 == 0o600
            assert state not in carried.read_bytes()  # the States are sealed too
            raw, auth = access_request("ivy", totp(seeds["ivy"], time.time()))
            nas.sendto(raw, to)  # once: no retransmission
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
            assert "took over 1 open challenges and 2 recent answers" in log
            assert not carried.exists()  # taken once
            # The retransmission of what the old process answered gets the same answer (its
            # code was used: deciding it again would reject it).
            nas.sendto(answered, to)
            again = answer(nas, answered_auth, 30)
            assert again is not None and again.code == p.ACCESS_ACCEPT
            # The challenge opened before the restart is finished by the new process, once.
            follow_up = totp(seeds["jo"], time.time())
            raw, auth = access_request("jo", follow_up, state)
            gw.sendto(raw, to)
            done = answer(gw, auth, 30)
            assert done is not None and done.code == p.ACCESS_ACCEPT
            raw, auth = access_request("jo", follow_up, state)
            gw.sendto(raw, to)
            replayed = answer(gw, auth, 30)
            assert replayed is not None and replayed.code == p.ACCESS_REJECT
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
