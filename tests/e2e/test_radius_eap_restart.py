"""An EAP conversation across a restart in place of the node that relays it (``openmfa
upgrade``/``rollback``'s restart: ``radius.handoff`` holds the RADIUS socket, the next process
is started ahead and goes on with it), judged by eapol_test with a real FreeRADIUS upstream.

Between eapol_test and the node sits a small UDP relay of the test's own (``PausingRelay``):
it passes every datagram unchanged, from 127.0.0.1 (the NAS's registered address), and can hold
the Access-Requests from a chosen round on, so the restart happens in the middle of the
conversation:

- a round held while the node restarts reaches the next process, which relays it with the
  NAS's State to the upstream, where the conversation lives: it goes on, the phone approves,
  eapol_test says SUCCESS with its MPPE keys OK;
- a round whose push is held (the upstream accepted, the phone has not answered) when the node
  stops is answered at once by the stopping process with an Access-Reject carrying an
  EAP-Failure, and its push is closed (expired): eapol_test ends with a clean FAILURE, well
  inside its -t, no Access-Accept leaves without an approved push, the upstream is not asked
  again, nothing counts toward the user's lock (also when the outer identity is the user's own
  name, as Windows sends it), and the next conversation succeeds. When that answer is lost on
  the way, eapol_test's retransmission reaches the next process, which answers it with the same
  Access-Reject (the recent answers carried over the restart) instead of relaying it again.

The same for MS-CHAPv2 (no EAP), judged by radclient: a request held for a push when the node
stops gets an Access-Reject with an MS-CHAP-Error (E=691), its push closed.
"""

from __future__ import annotations

import os
import select
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from openmfa.node.control import NodeControl
from openmfa.radius import handoff
from tests.radius import ms_chap_peer as peer

from .freeradius_upstream import EapolResult, eapol_test_conf
from .freeradius_upstream import run_eapol_test as eapol_test
from .helpers import OPENMFA, wait_for
from .relay_site import RelaySite, relay_site

pytestmark = [
    pytest.mark.e2e,
    # NodeControl.start_ahead leaves the next node running on its own (as `openmfa upgrade`
    # does); the test stops it itself, by its pid, at the end.
    pytest.mark.filterwarnings("ignore:subprocess .* is still running:ResourceWarning"),
]

USERS = {"erin": "erin-upstream-pw", "finn": "finn-upstream-pw"}
ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE = 1, 2, 3, 11
HOLD_AT = 4
"""The round held over the restart: after three Access-Challenges (inside PEAP's TLS
handshake), long before the Access-Accept."""
EAPOL_SECONDS = 60
"""eapol_test's -t: longer than the push hold (20 s) and a restart."""


@dataclass
class Seen:
    at: float
    way: str
    """``>`` from eapol_test to the node, ``<`` back, ``held`` kept for later."""
    code: int
    identifier: int


class PausingRelay:
    """Passes RADIUS datagrams between eapol_test and the node unchanged (one socket each way,
    both on 127.0.0.1, so the node sees the NAS it knows); from the ``hold_at``-th new
    Access-Request on (retransmissions of it too) they are held until ``release``."""

    def __init__(self, node_port: int, hold_at: int | None = None) -> None:
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.back.connect(("127.0.0.1", node_port))
        self.port: int = self.front.getsockname()[1]
        self.hold_at = hold_at
        self.rounds: list[bytes] = []
        """Each new Access-Request's identifier and authenticator, in order."""
        self.arrived = 0
        """Access-Requests from eapol_test (retransmissions included)."""
        self.trace: list[Seen] = []
        self.held: list[bytes] = []
        self.losing = threading.Event()
        """While set, the node's answers are lost on the way (noted, not passed on)."""
        self.lost: list[bytes] = []
        self.passed: list[bytes] = []
        """The node's answers passed on to eapol_test."""
        self.holding = threading.Event()
        """Set when the ``hold_at``-th round arrived (and is held)."""
        self._release = threading.Event()
        self._stop = threading.Event()
        self._nas: tuple[str, int] | None = None
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.front.close()
        self.back.close()

    def codes(self, way: str) -> list[int]:
        return [s.code for s in self.trace if s.way == way]

    def sent(self) -> int:
        """Access-Requests passed on to the node (retransmissions included)."""
        return len([s for s in self.trace if s.way == ">"])

    def retransmissions(self) -> int:
        return self.arrived - len(self.rounds)

    def show(self) -> str:
        return "\n".join(
            f"{s.at:7.2f} s {s.way:>4} code={s.code} id={s.identifier}" for s in self.trace
        )

    def _note(self, way: str, data: bytes) -> None:
        code, ident = (data[0], data[1]) if len(data) >= 2 else (0, -1)
        self.trace.append(Seen(time.monotonic() - self._start, way, code, ident))

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._release.is_set() and self.held:
                for data in self.held:
                    self._note(">", data)
                    self.back.send(data)
                self.held.clear()
            ready, _, _ = select.select([self.front, self.back], [], [], 0.05)
            if self.front in ready:
                data, self._nas = self.front.recvfrom(4096)
                self.arrived += 1
                key = data[1:2] + data[4:20]
                if key not in self.rounds:
                    self.rounds.append(key)
                hold = self.hold_at is not None and self.rounds.index(key) + 1 >= self.hold_at
                if hold and not self._release.is_set():
                    self._note("held", data)
                    self.held.append(data)
                    self.holding.set()
                else:
                    self._note(">", data)
                    self.back.send(data)
            if self.back in ready:
                try:
                    data = self.back.recv(4096)
                except ConnectionRefusedError:  # (ICMP) nothing listened for a moment
                    continue
                if self.losing.is_set():
                    self._note("lost", data)
                    self.lost.append(data)
                    continue
                self._note("<", data)
                self.passed.append(data)
                if self._nas is not None:
                    self.front.sendto(data, self._nas)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelaySite]:
    with relay_site(tmp_path_factory.mktemp("relay-restart"), USERS, hold_seconds=20) as s:
        first = s.node.proc.pid
        try:
            yield s
        finally:  # a node this module started by a restart: stopped by its pid
            control = NodeControl(s.dd)
            if control.pid() not in (None, first):
                control.stop()


def restart(site: RelaySite, between: Callable[[], None] = lambda: None) -> tuple[int, int]:
    """Restart the node in place as ``openmfa upgrade`` does: its RADIUS socket taken and held,
    the next process started ahead, the node stopped (``between`` is called when no node
    runs), the next one let go with the socket. Returns (the old pid, the new one); back once
    the new one is ready."""
    control = NodeControl(site.dd)
    old = control.pid()
    assert old is not None
    offered: list[socket.socket] = []

    def take() -> bool:
        s = handoff.take(site.dd)
        offered.extend([s] if s is not None else [])
        return s is not None

    wait_for(take, "the node offers its RADIUS socket", 30)
    held = offered[0]
    try:
        ahead = control.start_ahead(Path(OPENMFA), radius=held)
        assert ahead is not None
        control.stop()  # back once the old process let go of the data directory
        between()
        new = control.start(Path(OPENMFA), radius=held, ahead=ahead)
    finally:
        held.close()
    assert new != old
    return old, new


def log_text(site: RelaySite) -> str:
    """What the node's processes wrote so far: the first one's log, then the restarted ones'."""
    restarted = site.dd / NodeControl.log_name
    return site.node.log.read_text() + (restarted.read_text() if restarted.exists() else "")


def conversation(
    site: RelaySite, relay: PausingRelay, user: str, tmp: Path, outer: str = "anonymous"
) -> EapolResult:
    """PEAP-MSCHAPv2 for ``user`` through ``relay``, the tunnel's outer identity ``outer``."""
    conf = eapol_test_conf(
        tmp / f"peap-{user}-{outer}.conf", "peap", user, USERS[user], outer,
        ca_cert=site.upstream.ca,
    )  # fmt: skip
    return eapol_test(conf, relay.port, site.nas_secret, EAPOL_SECONDS)


def failures(site: RelaySite, user: str) -> int:
    """The wrong first factors counted toward ``user``'s lock."""
    with sqlite3.connect(site.dd / "openmfa.db") as db:
        row = db.execute(
            "SELECT s.failures FROM user_state s JOIN users u ON u.id = s.user_id WHERE u.name = ?",
            (user,),
        ).fetchone()
    return int(row[0]) if row else 0


def explained(result: EapolResult, relay: PausingRelay, site: RelaySite, since: int) -> str:
    return (
        f"{result.stdout[-3000:]}\n--- relay\n{relay.show()}\n--- node\n"
        f"{log_text(site)[since:][-5000:]}\n--- upstream\n{site.upstream.log()[-3000:]}"
    )


def lines(text: str, *words: str) -> str:
    """The lines of ``text`` that hold one of ``words`` (printed for the report)."""
    return "\n".join(line for line in text.splitlines() if any(w in line for w in words))


NODE_WORDS = ("RADIUS", "EAP", "push", "still being decided")
FORGOTTEN = "No EAP session matching state"
"""What the upstream logs when it is sent a round of a conversation it no longer knows."""


@pytest.mark.parametrize("forwarded", ["after", "between"])
def test_a_round_held_over_a_restart_goes_on_at_the_next_process(
    site: RelaySite, tmp_path: Path, forwarded: str
) -> None:
    """``after``: the held round is passed on once the next process is ready; ``between``:
    while no node runs (it waits in the held socket's queue)."""
    user = "erin"
    phone = site.answering(user, "approve")
    pushes, shown, since = len(site.push_requests(user)), len(phone.shown), len(log_text(site))
    relay = PausingRelay(site.radius_port, hold_at=HOLD_AT)
    try:
        with ThreadPoolExecutor(1) as pool:
            running: Future[EapolResult] = pool.submit(conversation, site, relay, user, tmp_path)
            assert relay.holding.wait(EAPOL_SECONDS), relay.show()
            assert relay.codes("<") == [ACCESS_CHALLENGE] * (HOLD_AT - 1)
            old, new = restart(site, relay.release if forwarded == "between" else lambda: None)
            relay.release()  # (after: the round reaches the next process only)
            result = running.result(timeout=EAPOL_SECONDS + 30)
    finally:
        relay.close()
    said = log_text(site)[since:]
    print(f"\nrestarted pid {old} -> {new}; {relay.retransmissions()} retransmissions")
    print(relay.show())
    print(lines(result.stdout, "(Access-", "MPPE keys", "EAP: Status", "SUCCESS", "FAILURE"))
    print(lines(said, *NODE_WORDS))
    assert result.success and result.mppe_ok, explained(result, relay, site, since)
    # the held round and every one after it were answered by the next process, at once: a
    # challenge each, then the Access-Accept once the phone approved
    answers = relay.codes("<")
    assert answers.count(ACCESS_ACCEPT) == 1 and answers[-1] == ACCESS_ACCEPT
    assert set(answers[:-1]) == {ACCESS_CHALLENGE}
    assert site.push_requests(user)[pushes:] == [("radius:nas", "accepted")]
    assert len(phone.shown) == shown + 1
    assert "RADIUS socket handed to pid" in said
    assert "recent answers left to the next process" in said
    assert "went on with the socket the restart held" in said
    assert "still being decided are left unanswered" not in said


@pytest.mark.parametrize("outer", ["anonymous", "own-name", "own-name-answer-lost"])
def test_a_push_held_when_the_node_restarts_ends_cleanly(
    site: RelaySite, tmp_path: Path, outer: str
) -> None:
    """The upstream accepted, the phone has not answered, the node restarts: the stopping
    process answers the round at once with an Access-Reject (an EAP-Failure) and closes the
    push; eapol_test's clean FAILURE, no Access-Accept, nothing counted toward the lock, the
    upstream not asked again. The NAS's next conversation succeeds. ``outer``: the tunnel's
    outer identity is "anonymous", or the user's own name (as Windows sends it by default);
    ``answer-lost``: the stopping process's answer never reaches eapol_test, whose
    retransmission the next process answers with the same bytes."""
    user = "finn"
    identity = "anonymous" if outer == "anonymous" else user
    lose = outer.endswith("answer-lost")
    phone = site.answering(user, "ignore")
    pushes, shown, since = len(site.push_requests(user)), len(phone.shown), len(log_text(site))
    wrong, forgotten = failures(site, user), site.upstream.log().count(FORGOTTEN)
    relay = PausingRelay(site.radius_port)
    try:
        with ThreadPoolExecutor(1) as pool:
            running: Future[EapolResult] = pool.submit(
                conversation, site, relay, user, tmp_path, identity
            )
            wait_for(lambda: len(phone.shown) == shown + 1, "the push on the phone", EAPOL_SECONDS)
            rounds, answered = len(relay.rounds), len(relay.passed)
            if lose:
                relay.losing.set()
            old, new = restart(site)
            if lose:
                wait_for(lambda: relay.lost, "the stopping process's answer", 10)
                relay.losing.clear()
            result = running.result(timeout=EAPOL_SECONDS + 30)
    finally:
        relay.close()
    said = log_text(site)[since:]
    print(f"\nrestarted pid {old} -> {new}; {relay.retransmissions()} retransmissions")
    print(relay.show())
    print(lines(result.stdout, "(Access-", "MPPE keys", "EAP: Status", "SUCCESS", "FAILURE"))
    print(lines(said, *NODE_WORDS))
    print(site.upstream.log().splitlines()[-3:], site.push_requests(user)[pushes:])
    assert result.returncode != -1, explained(result, relay, site, since)  # ended, not killed
    assert not result.success and not result.accept, explained(result, relay, site, since)
    assert "(Access-Reject)" in result.stdout
    answers = relay.codes("<")
    assert ACCESS_ACCEPT not in answers and answers[-1] == ACCESS_REJECT
    assert len(relay.rounds) == rounds  # no new round: the held one was answered
    after = relay.passed[answered:]  # one answer (a retransmission gets the same bytes)
    assert after and all(a == after[0] for a in after), relay.show()
    refusal = after[0]
    if lose:
        # the answer the stopping process made, lost, then the same bytes from the next process
        assert relay.lost[0] == refusal and relay.retransmissions() >= 1
        assert "recent answers left to the next process" in said
    else:
        assert relay.lost == []
    assert refusal[0] == ACCESS_REJECT
    # the upstream was not asked again (it would refuse a State it forgot) ...
    assert site.upstream.log().count(FORGOTTEN) == forgotten
    # ... nothing counted toward the lock, and the push closed: the phone no longer shows it
    assert failures(site, user) == wrong
    assert site.push_requests(user)[pushes:] == [("radius:nas", "expired")]
    assert "closed, its request answered before the stop" in said
    assert "still being decided are left unanswered" not in said

    # the NAS starts again: the next conversation goes through, the phone approving
    phone.decision = "approve"
    relay = PausingRelay(site.radius_port)
    try:
        again = conversation(site, relay, user, tmp_path, identity)
    finally:
        relay.close()
    assert again.success and again.mppe_ok, explained(again, relay, site, since)
    assert site.push_requests(user)[pushes + 1 :] == [("radius:nas", "accepted")]
    assert failures(site, user) == wrong


def test_an_mschapv2_push_held_when_the_node_restarts_ends_in_an_ms_chap_error(
    site: RelaySite,
) -> None:
    """An MS-CHAPv2 request (RFC 2759, computed by the tests' own peer; radclient sends it)
    whose push is held when the node restarts: the stopping process answers it with an
    Access-Reject carrying MS-CHAP-Error E=691, closes the push, and counts nothing."""
    user = "erin"
    phone = site.answering(user, "ignore")
    pushes, shown, since = len(site.push_requests(user)), len(phone.shown), len(log_text(site))
    wrong = failures(site, user)
    challenge, response = peer.build_request(user, USERS[user], os.urandom(16), os.urandom(16), 5)
    lines_in = [
        f'User-Name = "{user}"',
        f"MS-CHAP-Challenge = 0x{challenge.hex()}",
        f"MS-CHAP2-Response = 0x{response.hex()}",
        "Message-Authenticator = 0x00",
    ]
    vpn = subprocess.Popen(
        ["radclient", "-x", "-t", "40", "-r", "1", f"127.0.0.1:{site.radius_port}", "auth",
         site.nas_secret],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert vpn.stdin is not None
        vpn.stdin.write("\n".join(lines_in) + "\n")
        vpn.stdin.close()
        wait_for(lambda: len(phone.shown) == shown + 1, "the push on the phone", 30)
        assert vpn.poll() is None  # held
        restart(site)
        assert vpn.stdout is not None
        out = vpn.stdout.read()  # (to its end: radclient got its answer, or gave up)
        vpn.wait(timeout=60)
    finally:
        if vpn.poll() is None:
            vpn.kill()
            vpn.wait()
        if vpn.stdout is not None:
            vpn.stdout.close()
    said = log_text(site)[since:]
    print(lines(out, "Received", "MS-CHAP"))
    assert "Received Access-Reject" in out, out + said[-3000:]
    assert "E=691 R=0" in out and "MS-MPPE" not in out
    assert site.push_requests(user)[pushes:] == [("radius:nas", "expired")]
    assert "closed, its request answered before the stop" in said
    assert failures(site, user) == wrong
