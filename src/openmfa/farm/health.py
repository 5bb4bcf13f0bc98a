"""Is a node serving? What the rolling upgrade asks before it drains a node and after it puts
one back.

- Through the load balancer: HAProxy's own view (``show stat``: health-check status and
  effective weight), since that is what decides where sign-ins go.
- Directly: ``GET /readyz`` on the node's SDK, and a RADIUS Status-Server (RFC 5997) to its
  RADIUS address, signed with the shared secret of the RADIUS client that covers the address
  this host sends from (the same table the node answers from).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from ..config import parse_listen
from ..errors import BalancerError, ConfigError
from ..radius import packet as p
from ..radius.server import ClientTable
from .balancer import Balancer


def sdk_ready(url: str, timeout: float = 2.0) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url + "/readyz", timeout=timeout, verify=False).status_code == 200  # noqa: S501 - a farm node
    return False


def radius_address(url: str, listen: str) -> tuple[str, int] | None:
    """Where to reach a node's RADIUS server: its listen address (the node's host for a
    wildcard)."""
    try:
        host, port = parse_listen(listen)
    except ConfigError:
        return None
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard listen: the node's own host
        host = urlsplit(url).hostname or "127.0.0.1"
    return host, port


class RadiusProbe:
    """Status-Server to a node's RADIUS address, as a RADIUS client of the farm would."""

    def __init__(self, clients: ClientTable) -> None:
        self.clients = clients

    def secret_for(self, address: tuple[str, int]) -> tuple[str, bytes | None]:
        """(the address this host sends from, the secret of the client covering it)."""
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            try:
                s.connect(address)
            except OSError:
                return "?", None
            source = str(s.getsockname()[0])
        client = self.clients.match(source)
        return source, (client.secret if client is not None else None)

    def answers(self, address: tuple[str, int], secret: bytes, timeout: float = 1.0) -> bool:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        authenticator = os.urandom(16)
        ident = authenticator[0]
        raw = p.encode_request(p.STATUS_SERVER, ident, [], secret, authenticator)
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            try:
                s.sendto(raw, address)
                data, _ = s.recvfrom(4096)
                reply = p.verify_response(data, authenticator, secret)
            except (OSError, p.MalformedPacket):
                return False
        return reply.identifier == ident and reply.code == p.ACCESS_ACCEPT


def others_serving(
    balancer: Balancer, nodes: dict[str, str], name: str
) -> tuple[list[str], str] | None:
    """The other servers taking traffic, and how that was found — through the balancer when
    it can tell, else by asking each other node's ``/readyz``. None: the balancer failed."""
    try:
        servers = balancer.servers()
    except BalancerError:
        return None
    if servers is not None:
        return sorted(n for n, s in servers.items() if n != name and s.serving), "the balancer"
    return sorted(n for n, u in nodes.items() if n != name and sdk_ready(u)), "their /readyz"


class Watch:
    """While ``name`` is out of the load balancer, checks every ``every`` seconds that another
    server is up; if none is, ``put_back`` runs (once per outage) so the drained node, which
    can still serve, takes the traffic."""

    def __init__(
        self,
        balancer: Balancer,
        nodes: dict[str, str],
        name: str,
        put_back: Callable[[], None],
        every: float = 0.5,
    ) -> None:
        self.balancer = balancer
        self.nodes = nodes
        self.name = name
        self.put_back = put_back
        self.every = every
        self.was_put_back = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def rearm(self) -> None:
        self.was_put_back.clear()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            if self.was_put_back.is_set():
                continue
            found = others_serving(self.balancer, self.nodes, self.name)
            if found is not None and not found[0]:
                self.was_put_back.set()
                with contextlib.suppress(Exception):  # the main flow reports what follows
                    self.put_back()
