"""The asyncio UDP shell around the RADIUS codec and flows.

Invariant owned here: nothing from the network reaches the flows unless it comes from a
registered client address, parses, and carries a valid Message-Authenticator (or the client is
explicitly allowed to omit it). Everything else is dropped, counted, and logged without secrets.
Retransmissions (same source, Identifier and Request Authenticator) get the first answer.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import time
from collections import Counter, defaultdict, deque
from typing import Any

from ..node.commit_queue import Job
from ..node.radius_clients import RadiusClient
from . import packet as p
from .carry import SentAnswer
from .flows import AccessFlows
from .replies import Reply

log = logging.getLogger("openmfa.radius")
_PENDING = b""
_Key = tuple[tuple[Any, ...], int, bytes]
"""A request's identity for duplicate detection: (source address, Identifier, Authenticator)."""
MAX_DATAGRAM = 4096
PRUNE_SECONDS = 1.0
UP = Reply(p.ACCESS_ACCEPT, [(p.REPLY_MESSAGE, b"OpenMFA RADIUS is up")])
_COUNTER = {p.ACCESS_ACCEPT: "accept", p.ACCESS_REJECT: "reject", p.ACCESS_CHALLENGE: "challenge"}


class ClientTable:
    def __init__(self, clients: list[RadiusClient]) -> None:
        # Longest prefix first, so a host entry wins over the network it sits in.
        self._clients = sorted(clients, key=lambda c: c.network.prefixlen, reverse=True)
        self._by_ip: dict[str, RadiusClient | None] = {}

    def match(self, ip: str) -> RadiusClient | None:
        try:
            return self._by_ip[ip]
        except KeyError:
            pass
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        found = next((c for c in self._clients if addr in c.network), None)
        if len(self._by_ip) < 65536:
            self._by_ip[ip] = found
        return found


class RadiusServer:
    """Runs on the commit thread (``CommitQueue.add_source``): it reads the socket, answers what
    needs no decision, and hands the attempts of a burst of requests to the caller as one batch.
    Replies from slower flows (a first factor checked on the event loop) come back to this thread
    through ``CommitQueue.call``, so the state here is touched by one thread only."""

    def __init__(
        self,
        flows: AccessFlows,
        clients: ClientTable,
        duplicate_seconds: float,
        sock: socket.socket | None = None,
    ) -> None:
        self.flows = flows
        self.clients = clients
        self.duplicate_seconds = duplicate_seconds
        self.sock = sock
        self.stats: defaultdict[str, int] = defaultdict(int)
        """Counters by name (a ``defaultdict``: ``Counter``'s Python-level ``__delitem__`` makes
        every ``+= 1`` a slow call)."""
        self._recent: dict[_Key, tuple[float, bytes]] = {}
        self._arrivals: deque[tuple[float, _Key]] = deque()  # oldest first, for pruning
        self._logged: Counter[str] = Counter()
        self._pruned = time.monotonic()
        self.draining = False
        """Set for a rolling upgrade: no new challenge is opened here; follow-ups of open ones
        and requests decided in one round are still answered (``_still_answered``)."""

    def read(self, limit: int) -> list[Job]:
        """Take up to ``limit`` datagrams that are waiting; return the attempts they carry."""
        sock = self.sock
        assert sock is not None
        jobs: list[Job] = []
        for _ in range(limit):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._drop("receive_error", "could not receive a datagram: %s", exc.strerror)
                break
            try:
                job = self.receive(data, addr)
            except Exception:  # a bug must cost one request, never the server
                self.stats["internal_error"] += 1
                log.exception("could not handle a request from %s", addr[0])
                continue
            if job is not None:
                jobs.append(job)
        now = time.monotonic()
        if now - self._pruned >= PRUNE_SECONDS:
            self.prune(now)
        return jobs

    def receive(self, data: bytes, addr: tuple[str, int]) -> Job | None:
        self.stats["received"] += 1
        client = self.clients.match(addr[0])
        if client is None:
            self._drop("unknown_client", "request from %s, which is not a RADIUS client", addr[0])
            return None
        try:
            pkt = p.decode(data)
        except p.MalformedPacket as exc:
            self._drop("malformed", "malformed packet from %s (%s): %s", client.name, addr[0], exc)
            return None
        key = (addr, pkt.identifier, pkt.authenticator)
        seen = self._recent.get(key)
        if seen is not None:
            self.stats["duplicate"] += 1
            if seen[1] is not _PENDING:
                self._sendto(seen[1], addr)
            return None
        if pkt.code not in (p.ACCESS_REQUEST, p.STATUS_SERVER):
            self._drop(
                "unsupported_code", "code %d from %s is not handled here", pkt.code, client.name
            )
            return None
        ma = p.request_ma_status(pkt, client.secret)
        if ma is False:
            self._drop(
                "bad_authenticator",
                "Message-Authenticator from %s does not match (wrong shared secret?)",
                client.name,
            )
            return None
        if ma is None and (client.require_ma or pkt.code == p.STATUS_SERVER):
            self._drop(
                "missing_authenticator",
                "request from %s has no Message-Authenticator; it is required (BlastRADIUS)",
                client.name,
            )
            return None
        if self.draining and not self._still_answered(client, pkt):
            self.stats["drained"] += 1  # unanswered: the client retries its next server
            return None
        now = time.monotonic()
        self._recent[key] = (now, _PENDING)
        self._arrivals.append((now, key))
        if pkt.code == p.STATUS_SERVER:
            self.stats["status_server"] += 1
            self.send(client, pkt, addr, key, UP)
            return None
        self.stats["access_request"] += 1
        respond = functools.partial(self.send, client, pkt, addr, key)
        return self.flows.handle(client, pkt, respond, addr[0])

    def _still_answered(self, client: RadiusClient, pkt: p.Packet) -> bool:
        """While draining: the follow-up of an open challenge, or a request decided in one
        round; not a Status-Server (gateways that watch for it move away)."""
        if pkt.code != p.ACCESS_REQUEST:
            return False
        return pkt.get(p.STATE) is not None or self.flows.answered_while_draining(client, pkt)

    def sent_answers(self) -> list[SentAnswer]:
        """The answers still in the duplicate window, for this node's next process (call when
        nothing reads the socket any more)."""
        wall, mono = time.time(), time.monotonic()
        return [
            SentAnswer(list(addr), ident, auth, raw, wall - (mono - at))
            for (addr, ident, auth), (at, raw) in self._recent.items()
            if raw is not _PENDING and mono - at < self.duplicate_seconds
        ]

    def take_answers(self, answers: list[SentAnswer]) -> int:
        """The previous process's answers: a retransmission of what it answered gets the same
        answer here. Call before the first read."""
        wall, mono = time.time(), time.monotonic()
        taken = 0
        for a in sorted(answers, key=lambda a: a.at):
            age = wall - a.at
            if 0 <= age < self.duplicate_seconds:
                key = (tuple(a.address), a.identifier, a.authenticator)
                self._recent[key] = (mono - age, a.reply)
                self._arrivals.append((mono - age, key))
                taken += 1
        return taken

    def send(
        self,
        client: RadiusClient,
        pkt: p.Packet,
        addr: tuple[str, int],
        key: _Key,
        reply: Reply,
    ) -> None:
        code = reply.code
        raw = p.encode_response(pkt, code, reply.attributes, client.secret)
        recent = self._recent
        seen = recent.get(key)
        if seen is not None:  # remember the answer, for retransmissions
            recent[key] = (seen[0], raw)
        self.stats[_COUNTER.get(code, "other")] += 1
        if self.sock is not None:
            try:
                self.sock.sendto(raw, addr)
            except OSError as exc:  # a full send buffer: the client retransmits, we answer again
                self._drop("send_error", "could not send a reply to %s: %s", addr[0], exc.strerror)

    def _sendto(self, raw: bytes, addr: tuple[str, int]) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendto(raw, addr)
        except OSError as exc:  # a full send buffer: the client retransmits, we answer again
            self._drop("send_error", "could not send a reply to %s: %s", addr[0], exc.strerror)

    def _drop(self, why: str, message: str, *args: object) -> None:
        self.stats[why] += 1
        self.stats["dropped"] += 1
        if self._logged[why] < 20:  # no log flood from a storm of junk
            self._logged[why] += 1
            log.warning("dropped: " + message, *args)

    def prune(self, now: float | None = None) -> None:
        """Forget answers older than the duplicate window; let the log speak again."""
        now = time.monotonic() if now is None else now
        self._pruned = now
        horizon = now - self.duplicate_seconds
        recent, arrivals = self._recent, self._arrivals
        while arrivals and arrivals[0][0] < horizon:
            at, key = arrivals.popleft()
            entry = recent.get(key)
            if entry is None or entry[0] != at:
                continue
            if entry[1] is _PENDING:  # still being decided: keep it for another window
                recent[key] = (now, _PENDING)
                arrivals.append((now, key))
            else:
                del recent[key]
        self._logged.clear()
