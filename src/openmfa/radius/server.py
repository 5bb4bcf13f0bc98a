"""The asyncio UDP shell around the RADIUS codec and flows.

Invariant owned here: nothing from the network reaches the flows unless it comes from a
registered client address, parses, and carries a valid Message-Authenticator (or the client is
explicitly allowed to omit it). Everything else is dropped, counted, and logged without secrets.
Retransmissions (same source, Identifier and Request Authenticator) get the first answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter

from ..node.radius_clients import RadiusClient
from . import packet as p
from .flows import AccessFlows, Reply

log = logging.getLogger("openmfa.radius")
_PENDING = b""
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


class RadiusServer(asyncio.DatagramProtocol):
    def __init__(self, flows: AccessFlows, clients: ClientTable, duplicate_seconds: float) -> None:
        self.flows = flows
        self.clients = clients
        self.duplicate_seconds = duplicate_seconds
        self.stats: Counter[str] = Counter()
        self.transport: asyncio.DatagramTransport | None = None
        self._recent: dict[tuple[object, int, bytes], tuple[float, bytes]] = {}
        self._logged: Counter[str] = Counter()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stats["received"] += 1
        client = self.clients.match(addr[0])
        if client is None:
            self._drop("unknown_client", "request from %s, which is not a RADIUS client", addr[0])
            return
        try:
            pkt = p.decode(data)
        except p.MalformedPacket as exc:
            self._drop("malformed", "malformed packet from %s (%s): %s", client.name, addr[0], exc)
            return
        key = (addr, pkt.identifier, pkt.authenticator)
        seen = self._recent.get(key)
        if seen is not None:
            self.stats["duplicate"] += 1
            if seen[1] is not _PENDING and self.transport is not None:
                self.transport.sendto(seen[1], addr)
            return
        if pkt.code not in (p.ACCESS_REQUEST, p.STATUS_SERVER):
            self._drop(
                "unsupported_code", "code %d from %s is not handled here", pkt.code, client.name
            )
            return
        ma = p.request_ma_status(pkt, client.secret)
        if ma is False:
            self._drop(
                "bad_authenticator",
                "Message-Authenticator from %s does not match (wrong shared secret?)",
                client.name,
            )
            return
        if ma is None and (client.require_ma or pkt.code == p.STATUS_SERVER):
            self._drop(
                "missing_authenticator",
                "request from %s has no Message-Authenticator; it is required (BlastRADIUS)",
                client.name,
            )
            return
        self._recent[key] = (time.monotonic(), _PENDING)
        if pkt.code == p.STATUS_SERVER:
            self.stats["status_server"] += 1
            self._send(
                client,
                pkt,
                addr,
                key,
                Reply(p.ACCESS_ACCEPT, [(p.REPLY_MESSAGE, b"OpenMFA RADIUS is up")]),
            )
            return
        self.stats["access_request"] += 1
        self.flows.handle(client, pkt, lambda reply: self._send(client, pkt, addr, key, reply))

    def _send(
        self,
        client: RadiusClient,
        pkt: p.Packet,
        addr: tuple[str, int],
        key: tuple[object, int, bytes],
        reply: Reply,
    ) -> None:
        raw = p.encode_response(pkt, reply.code, reply.attributes, client.secret)
        self._recent[key] = (time.monotonic(), raw)
        self.stats[_COUNTER.get(reply.code, "other")] += 1
        if self.transport is not None:
            self.transport.sendto(raw, addr)

    def _drop(self, why: str, message: str, *args: object) -> None:
        self.stats[why] += 1
        self.stats["dropped"] += 1
        if self._logged[why] < 20:  # no log flood from a storm of junk
            self._logged[why] += 1
            log.warning("dropped: " + message, *args)

    def prune(self) -> None:
        """Forget answers older than the duplicate window; let the log speak again."""
        horizon = time.monotonic() - self.duplicate_seconds
        self._recent = {
            k: v for k, v in self._recent.items() if v[0] >= horizon or v[1] is _PENDING
        }
        self._logged.clear()
