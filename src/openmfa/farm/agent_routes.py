"""The endpoints every node of a farm serves the orchestrator and its peers: what it says of
itself (hello), RADIUS draining, promotion and master notices, upgrade and rollback."""

from __future__ import annotations

from pathlib import Path

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..contract import ComponentOrder
from ..errors import Conflict
from ..store.database import Store
from .agent import start_rollback, start_upgrade
from .components import ComponentBoard
from .routes import (
    RadiusActivity,
    SignedEndpoints,
    _decode,
    _Drain,
    _Epoch,
    _json,
    _Master,
    _Upgrade,
    describe,
    log,
    store_membership,
)
from .signing import SignatureCheck


class _ComponentOrder(msgspec.Struct, kw_only=True):
    name: str
    order: ComponentOrder | None = None
    forget: bool = False


class AgentEndpoints(SignedEndpoints):
    def __init__(
        self,
        store: Store,
        checks: dict[bytes, SignatureCheck],
        board: ComponentBoard,
        radius: RadiusActivity | None,
    ) -> None:
        """``radius``: the node's RADIUS server (None: RADIUS is off)."""
        super().__init__(store, checks)
        self.radius = radius
        self.board = board

    async def hello(self, request: Request) -> Response:
        m, _ = await self._verified(request, master=False)
        said = await run_in_threadpool(describe, self.store, m)
        if self.radius is not None:
            said.radius = self.radius.activity()
        said.components = self.board.seen()
        return _json(said)

    async def component_order(self, request: Request) -> Response:
        """Hold an order for a component, clear it, or forget the component (sent by ``farm
        upgrade``, ``farm rollback`` and ``farm forget-component`` to every node)."""
        _, node = await self._verified(request, master=False)
        body = await _decode(request, _ComponentOrder)
        if body.forget:
            found = await run_in_threadpool(self.board.forget, body.name)
            return _json({"forgotten": found})
        self.board.order(body.name, body.order)
        if body.order is not None:
            log.warning(
                "holding %s of %s to %s for it, as asked by %s",
                body.order.action,
                body.name,
                body.order.target,
                node,
            )
        return _json({"held": body.order is not None})

    async def drain(self, request: Request) -> Response:
        """Stop (or resume) taking new RADIUS sign-ins; challenges already open still finish.

        A draining node drops Status-Server and the new Access-Requests a stop would cut
        unanswered, which is how RADIUS clients learn to use their next server (RFC 2865 §2.4
        retransmission); with ``carry`` its next process takes the open challenges over, so
        only a push held open is one of those."""
        _, node = await self._verified(request, master=False)
        body = await _decode(request, _Drain)
        if self.radius is None:
            return _json({"radius": None})
        self.radius.set_draining(body.on, body.carry)
        how = "draining" + (" (challenges carried over)" if body.carry else "")
        log.warning("RADIUS %s, as asked by %s", how if body.on else "back", node)
        return _json({"radius": self.radius.activity()})

    async def promote(self, request: Request) -> Response:
        """Become the master of a new, higher epoch (sent by ``farm promote``)."""
        m, node = await self._verified(request, master=False)
        body = await _decode(request, _Epoch)
        if body.epoch <= m.epoch:
            raise Conflict(f"epoch {body.epoch} is not newer than this node's {m.epoch}")
        promoted = m.with_master(body.epoch, m.self_url)
        await run_in_threadpool(store_membership, self.store, promoted)
        log.warning("promoted to master of epoch %d by %s", body.epoch, node)
        return _json(await run_in_threadpool(describe, self.store, promoted))

    async def master_notice(self, request: Request) -> Response:
        """The farm has a new master (sent by the node that made the promotion)."""
        m, node = await self._verified(request, master=False)
        body = await _decode(request, _Master)
        if body.epoch > m.epoch:
            now = m.with_master(body.epoch, body.master_url)
            await run_in_threadpool(store_membership, self.store, now)
            log.warning(
                "the farm's master is now %s (epoch %d; told by %s)",
                body.master_url,
                body.epoch,
                node,
            )
            m = now
        return _json(await run_in_threadpool(describe, self.store, m))

    async def upgrade(self, request: Request) -> Response:
        """Upgrade this node from a bundle on its host (sent by ``farm upgrade``)."""
        _, node = await self._verified(request, master=False)
        body = await _decode(request, _Upgrade)
        started = await run_in_threadpool(start_upgrade, self.store, Path(body.bundle))
        log.warning("upgrading from %s as asked by %s (pid %s)", body.bundle, node, started["pid"])
        return _json(started)

    async def rollback(self, request: Request) -> Response:
        """Go back to the release before the last upgrade (sent by ``farm rollback``)."""
        _, node = await self._verified(request, master=False)
        started = await run_in_threadpool(start_rollback, self.store)
        log.warning(
            "rolling back to %s as asked by %s (pid %s)", started["to"], node, started["pid"]
        )
        return _json(started)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/farm/hello", self.hello),
            Route("/v1/farm/promote", self.promote, methods=["POST"]),
            Route("/v1/farm/master", self.master_notice, methods=["POST"]),
            Route("/v1/farm/upgrade", self.upgrade, methods=["POST"]),
            Route("/v1/farm/rollback", self.rollback, methods=["POST"]),
            Route("/v1/farm/drain", self.drain, methods=["POST"]),
            Route("/v1/farm/components", self.component_order, methods=["POST"]),
        ]
