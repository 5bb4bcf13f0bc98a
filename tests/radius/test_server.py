"""The RADIUS server shell on real loopback sockets: duplicate answers and their expiry.

Status-Server requests need no decision, so these run the server's own reading code
(``RadiusServer.read``) without a node around it."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

from openmfa.node.radius_clients import RadiusClient
from openmfa.radius import packet as p
from openmfa.radius.carry import SentAnswer
from openmfa.radius.server import ClientTable, RadiusServer

SECRET = b"testing123"


@pytest.fixture
def pair() -> Iterator[tuple[RadiusServer, socket.socket]]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.setblocking(False)
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.connect(srv.getsockname())
    cli.settimeout(2)
    client = RadiusClient("lab", ipaddress.ip_network("127.0.0.1/32"), SECRET, "none", True, False)
    flows = cast(Any, None)  # Status-Server never reaches the flows
    server = RadiusServer(flows, ClientTable([client]), duplicate_seconds=30, sock=srv)
    yield server, cli
    srv.close()
    cli.close()


def _read_all(server: RadiusServer) -> None:
    deadline = time.monotonic() + 2
    while server.stats["received"] == 0 and time.monotonic() < deadline:
        server.read(16)
        time.sleep(0.01)


def test_retransmission_gets_the_first_answer_until_the_window_ends(
    pair: tuple[RadiusServer, socket.socket],
) -> None:
    server, cli = pair
    raw = p.encode_request(p.STATUS_SERVER, 9, [], SECRET, bytes(range(16)))
    cli.send(raw)
    _read_all(server)
    first = cli.recv(4096)
    assert first[0] == p.ACCESS_ACCEPT and server.stats["status_server"] == 1

    cli.send(raw)  # a retransmission: same source, Identifier, Authenticator
    deadline = time.monotonic() + 2
    while server.stats["received"] < 2 and time.monotonic() < deadline:
        server.read(16)
    assert cli.recv(4096) == first
    assert server.stats["duplicate"] == 1 and server.stats["status_server"] == 1

    server.prune(time.monotonic() + 31)  # the duplicate window has passed
    cli.send(raw)
    deadline = time.monotonic() + 2
    while server.stats["received"] < 3 and time.monotonic() < deadline:
        server.read(16)
    cli.recv(4096)
    assert server.stats["status_server"] == 2, "an expired entry must be answered afresh"


def test_prune_keeps_requests_still_being_decided(
    pair: tuple[RadiusServer, socket.socket],
) -> None:
    server, _ = pair
    recent = server._recent
    now = time.monotonic()
    pending_key = (("127.0.0.1", 1), 1, b"a" * 16)
    done_key = (("127.0.0.1", 1), 2, b"b" * 16)
    recent[pending_key] = (now, b"")
    recent[done_key] = (now, b"answer")
    server._arrivals.extend([(now, pending_key), (now, done_key)])
    server.prune(now + 31)
    assert pending_key in recent, "a request without an answer yet stays known"
    assert done_key not in recent
    server.prune(now + 62)
    assert pending_key in recent  # it is re-armed each window until answered


def test_answers_left_by_the_previous_process_answer_its_retransmissions(
    pair: tuple[RadiusServer, socket.socket],
) -> None:
    """A restart in place: the answers in the duplicate window go to the next process, which
    answers a retransmission with them instead of deciding it again."""
    server, cli = pair
    raw = p.encode_request(p.STATUS_SERVER, 11, [], SECRET, bytes(range(1, 17)))
    cli.send(raw)
    _read_all(server)
    first = cli.recv(4096)
    sent = server.sent_answers()
    assert len(sent) == 1 and sent[0].reply == first
    flows = cast(Any, None)
    after = RadiusServer(flows, server.clients, duplicate_seconds=30, sock=server.sock)
    assert after.take_answers(sent) == 1
    cli.send(raw)
    deadline = time.monotonic() + 2
    while after.stats["received"] == 0 and time.monotonic() < deadline:
        after.read(16)
    assert cli.recv(4096) == first
    assert after.stats["duplicate"] == 1 and after.stats["status_server"] == 0
    stale = RadiusServer(flows, server.clients, duplicate_seconds=30, sock=server.sock)
    aged = [SentAnswer(a.address, a.identifier, a.authenticator, a.reply, a.at - 31) for a in sent]
    assert stale.take_answers(aged) == 0  # older than the window: decided afresh
