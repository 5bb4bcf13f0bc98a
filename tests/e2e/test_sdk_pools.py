"""The asyncio client's connection pools (``sdk.pools``) against a real node: concurrent calls
are spread over the pools, and each keeps its connections alive from one round to the next."""

from __future__ import annotations

import asyncio
from pathlib import Path

from openmfa.sdk import AsyncSdkClient
from openmfa.sdk.pools import POOLS, Pools

from .helpers import init, server


def test_concurrent_calls_share_small_pools_that_keep_their_connections(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    token = init(dd)
    with server(dd) as srv:

        async def scenario() -> None:
            async with AsyncSdkClient(srv.url, token) as sdk:
                pools = sdk._http._transport
                assert isinstance(pools, Pools)

                def connections() -> list[int]:
                    return [len(p._pool.connections) for p in pools._pools]

                await asyncio.gather(*(sdk.list_users() for _ in range(16)))
                first = connections()
                assert len(first) == POOLS and all(0 < n <= 16 // POOLS + 2 for n in first)
                kept = {id(c) for p in pools._pools for c in p._pool.connections}
                for _ in range(3):
                    await asyncio.gather(*(sdk.list_users() for _ in range(16)))
                now = {id(c) for p in pools._pools for c in p._pool.connections}
                assert kept <= now  # the same connections, used again

        asyncio.run(scenario())
