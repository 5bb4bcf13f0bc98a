"""The RADIUS server as part of a running node: socket, client table refresh, counters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

from ..config import Config, parse_listen
from ..errors import ConfigError
from ..farm.push_relay import MasterPush
from ..farm.wire import RadiusState
from ..node.commit_queue import CommitQueue
from ..node.first_factor import PasswordCheck
from ..node.push import PushService
from ..node.push_hub import PushHub
from ..node.radius_clients import RadiusClients
from ..store.database import Store
from . import carry
from .flows import AccessFlows
from .handoff import HandOff
from .server import ClientTable, RadiusServer

log = logging.getLogger("openmfa.radius")
REFRESH_SECONDS = 1.0
SETTLE_SECONDS = 5.0
"""How long a stop waits for the answers being worked on (a push follow-up waits 3 s)."""


def bind_udp(listen: str) -> socket.socket:
    """Bind the RADIUS socket, so a taken port is a clear error before anything starts."""
    host, port = parse_listen(listen)
    try:
        family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind(addr)
    except OSError as exc:
        raise ConfigError(
            f"could not listen for RADIUS on {listen} ({exc.strerror}); choose another address "
            "with --radius-listen or [radius] listen (empty turns RADIUS off)"
        ) from None
    sock.setblocking(False)
    return sock


def _deeper_receive_buffer(sock: socket.socket, size: int = 4 << 20) -> None:
    """Room for the requests that arrive while a batch is being committed (the kernel caps
    this at net.core.rmem_max)."""
    with contextlib.suppress(OSError):
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < size:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class RadiusService:
    def __init__(
        self,
        store: Store,
        config: Config,
        queue: CommitQueue,
        listen: str,
        checks: dict[str, PasswordCheck],
        push: PushService,
        hub: PushHub,
        remote: MasterPush,
        sock: socket.socket | None = None,
    ) -> None:
        """``checks``: the node's first-factor checks by name (``local``, ``ldap``,
        ``radius``), built once per configuration and shared with the portal's sign-in;
        ``push``, ``hub``: the node's push requests and their waiters; ``remote``: a farm
        subordinate's way to the master's push requests."""
        self.store = store
        self.listen = listen
        self.sock = sock
        self.flows = AccessFlows(store, config, queue, checks, push, hub, remote)
        self.queue = queue
        self.protocol = RadiusServer(
            self.flows, ClientTable([]), config.get("radius", "duplicate_seconds")
        )
        self._refresher: asyncio.Task[None] | None = None
        self._generation = -1
        self._handoff: HandOff | None = None

    async def start(self) -> None:
        await self._refresh()
        self._take_over()
        loop = asyncio.get_running_loop()
        sock = self.sock = self.sock or bind_udp(self.listen)
        _deeper_receive_buffer(sock)
        self.flows.loop = loop
        self.protocol.sock = sock
        self.queue.add_source(sock, self.protocol.read)
        log.info(
            "RADIUS listening on udp %s (%d clients)",
            self.listen,
            len(self.protocol.clients._clients),
        )
        self._refresher = loop.create_task(self._keep_fresh())
        self._handoff = HandOff(self.store.data_dir.root, sock)
        self._handoff.start()

    def set_draining(self, on: bool, carry: bool = False) -> None:
        """``carry``: the next process takes the open challenges over (a restart in place by
        a release that reads them), so new ones are still opened here."""
        self.protocol.draining = on
        self.flows.carrying = on and carry

    def activity(self) -> RadiusState:
        return RadiusState(
            listen=self.listen,
            draining=self.protocol.draining,
            open_challenges=self.flows.open_here(time.time()),
        )

    async def stop(self) -> None:
        """Stop reading requests; what was read is still answered until ``close``."""
        if self._handoff is not None:
            await self._handoff.stop()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.sock is not None:
            self.queue.remove_source(self.sock)
        left = await self.flows.settle(SETTLE_SECONDS)
        if left:
            log.warning("RADIUS: %d requests still being decided are left unanswered", left)
        log.info("RADIUS counters: %s", dict(self.protocol.stats))

    def close(self) -> None:
        """After the last answer: leave the open challenges and the recent answers to this
        node's next process (``carry``), and let go of the socket (a restart may hold it
        still, so the requests that arrive from now on wait for the next process:
        ``handoff``)."""
        if self.sock is not None and self.protocol.sock is not None:
            now = time.time()
            carried = carry.Carried(
                written=now,
                states=self.flows.states.carry(now),
                answers=self.protocol.sent_answers(),
                remote_pushes=self.flows.remote_pushes(),
            )
            try:
                carry.save(self.store, carried)
            except OSError as exc:
                log.error("could not leave the open RADIUS sign-ins to the next process: %s", exc)
            else:
                log.info(
                    "RADIUS: %d open challenges and %d recent answers left to the next process",
                    len(carried.states),
                    len(carried.answers),
                )
        if self.sock is not None:
            self.sock.close()

    def _take_over(self) -> None:
        carried = carry.take(self.store)
        if carried is None:
            return
        now = time.time()
        states = self.flows.states.restore(carried.states, now)
        answers = self.protocol.take_answers(carried.answers)
        self.flows.restore_remote_pushes(carried.remote_pushes)
        log.info(
            "RADIUS: took over %d open challenges and %d recent answers from the previous process",
            states,
            answers,
        )

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self._refresh()
            except Exception:
                log.exception("could not reload the RADIUS clients; keeping the old list")

    async def _refresh(self) -> None:
        def load() -> ClientTable | None:
            with self.store.read() as conn:
                generation = Store.generation(conn)
            if generation == self._generation:
                return None
            self._generation = generation
            return ClientTable(RadiusClients(self.store).all())

        table = await asyncio.to_thread(load)
        if table is not None:
            self.protocol.clients = table
