"""Several small connection pools to the nodes, taken in turn, for the asyncio client.

httpcore's pool looks at every one of its connections on each request and each answer (has
the node closed it? a poll of its socket, through anyio's attribute table): with the 16 and
more connections a busy portal host keeps to a node, that cost more CPU than the request
itself. Pools of a few connections each, taken in turn, keep the look short; each keeps its
connections alive between calls like one pool would.
"""

from __future__ import annotations

import ssl

import httpx

POOLS = 4
"""How many pools (a portal under 16 concurrent pages keeps about four connections in each)."""


class Pools(httpx.AsyncBaseTransport):
    """``POOLS`` HTTP transports, a request going to the next one in turn."""

    def __init__(self, verify: ssl.SSLContext | bool = True, count: int = POOLS) -> None:
        limits = httpx.Limits(max_connections=100 // count, max_keepalive_connections=20 // count)
        self._pools = [httpx.AsyncHTTPTransport(verify=verify, limits=limits) for _ in range(count)]
        self._next = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = self._pools[self._next]
        self._next = (self._next + 1) % len(self._pools)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
