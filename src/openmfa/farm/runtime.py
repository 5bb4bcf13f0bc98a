"""The farm inside a running ``openmfa serve``: it plays whatever role the data file says.

Roles change by writing the membership (``farm join``, ``farm promote``, a notice from another
node, or the fencing check below); this watcher sees the change within a second and starts or
stops the follower, the audit relay and the claims client to match. A master also asks the
other nodes, every few seconds and first thing on start, whether the farm has moved on to a
newer epoch; if so it demotes itself and follows (a former master never keeps leading).
Every minute it forgets change records beyond ``[farm] retain_changes``.
"""

from __future__ import annotations

import asyncio
import logging

from ..config import Config
from ..node.audit_retention import AuditRetention
from ..node.commit_queue import CommitQueue
from ..store.database import Store
from . import membership
from .audit_relay import AuditRelay
from .claims import round_for
from .feed import prune_changes
from .follower import Follower, current_master
from .membership import Membership, save
from .state_push import StateJournal
from .tasks import cancel_and_wait

log = logging.getLogger("openmfa.farm")
WATCH_SECONDS = 1.0
PEER_CHECK_SECONDS = 5.0
PRUNE_SECONDS = 60.0


class FarmRuntime:
    def __init__(
        self,
        store: Store,
        config: Config,
        queue: CommitQueue,
        journal: StateJournal | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.queue = queue
        self.journal = journal
        self.m: Membership | None = None
        self.follower: Follower | None = None
        self.relay: AuditRelay | None = None
        self.retention = AuditRetention(store, config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._tick(check_peers=True)
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self._stop_parts()

    async def _watch(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            ticks += 1
            try:
                await self._tick(check_peers=ticks % int(PEER_CHECK_SECONDS) == 0)
                if ticks % int(PRUNE_SECONDS) == 1:
                    await asyncio.to_thread(self._prune)
            except Exception:
                log.exception("farm watcher failed; retrying")

    def _prune(self) -> None:
        removed = prune_changes(self.store, int(self.config.get("farm", "retain_changes")))
        if removed:
            log.info("forgot %d old change records ([farm] retain_changes)", removed)
        self.retention.run()  # [audit] retain_days, at the master (node.audit_retention)

    async def _tick(self, *, check_peers: bool) -> None:
        m = await asyncio.to_thread(membership.load, self.store)
        if m is not None and m.is_master and check_peers:
            m = await asyncio.to_thread(self._fence, m)
        if _shape(m) != _shape(self.m):
            await self._become(m)

    def _fence(self, m: Membership) -> Membership:
        """A master that finds a newer epoch elsewhere demotes itself and follows."""
        found = current_master(self.store, m)
        if found is None or found[0] <= m.epoch:
            return m
        epoch, url = found
        log.warning(
            "this node was master of epoch %d; the farm is at epoch %d under %s: "
            "it stops taking writes and follows",
            m.epoch,
            epoch,
            url,
        )
        demoted = m.with_master(epoch, url)
        with self.store.write() as conn:
            save(self.store, conn, demoted)
        return demoted

    async def _become(self, m: Membership | None) -> None:
        await self._stop_parts()
        self.m = m
        round_ = await asyncio.to_thread(round_for, self.store, self.config)
        # Only a master's acceptances are pushed to subordinates (nothing to do elsewhere).
        leads = m is not None and m.is_master and self.journal is not None
        on_state = self.journal.note if leads and self.journal else None
        # The authenticator is the commit thread's alone: its role changes on that thread,
        # between two batches, never under one.
        await self.queue.run(lambda auth: auth.set_role(round_, on_state))
        if m is None:
            return
        if m.farm_role.follows:
            self.follower = Follower(self.store, m)
            self.follower.start()
            self.relay = AuditRelay(self.store, m)
            self.relay.start()
            log.info("farm %s: subordinate of %s (epoch %d)", m.farm_id, m.master_url, m.epoch)
        else:
            log.info("farm %s: %s (epoch %d)", m.farm_id, m.role, m.epoch)

    async def _stop_parts(self) -> None:
        if self.follower is not None:
            await self.follower.stop()
            self.follower = None
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None


def _shape(m: Membership | None) -> tuple[str, int, str] | None:
    return None if m is None else (m.role, m.epoch, m.master_url)
