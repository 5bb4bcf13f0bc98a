"""Directory synchronisation on a schedule, inside ``openmfa serve``, on the farm's master only.

Every few seconds the node looks at its role and at each source's last run (the state is
replicated, so a newly promoted master knows when the old one last ran): a master runs the
sources that are due (``[directory] interval_minutes``), and runs at once when it has just
become master. Subordinates never run it; they get the users by replication. A node on its own
is its own master. (A shared-database farm — every node writes one PostgreSQL database — has no
single master: run ``openmfa directory sync`` from cron on one node there.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from ..config import Config
from ..store import formats
from ..store.database import Store
from .sync import DirectorySync

log = logging.getLogger("openmfa.directory")
TICK_SECONDS = 5.0


class DirectorySchedule:
    def __init__(self, store: Store, config: Config, is_master: Callable[[], bool]) -> None:
        """``is_master``: whether this node is the farm's master now (a node on its own is)."""
        self.store = store
        self.is_master = is_master
        self.sync = DirectorySync(store, config)
        self.interval = 60.0 * float(config.get("directory", "interval_minutes"))
        self.configured = bool(config.get("directory", "sources"))
        self._task: asyncio.Task[None] | None = None
        self._was_master = True  # on start, a master runs only what is due

    def start(self) -> None:
        if self.configured:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except Exception:
                log.exception("directory synchronisation failed; trying again later")
            await asyncio.sleep(TICK_SECONDS)

    def tick(self, now: float | None = None) -> list[str]:
        """Run what is due if this node is master; returns the sources it ran."""
        now = time.time() if now is None else now
        master = self.is_master()
        became = master and not self._was_master
        self._was_master = master
        if not master:
            return []
        with self.store.read() as conn:
            if formats.local_format(conn) < formats.DIRECTORY_FORMAT:
                return []  # until `farm finalize` (or `migrate`) brings format 5
        ran = []
        for source in self.sync.sources():
            last = float(self.sync.state(source.name).get("last_run_at") or 0)
            if became or now - last >= self.interval:
                (result,) = self.sync.run(source.name, client="schedule")
                what = result.error or ", ".join(
                    f"{v} {k}" for k, v in result.plan.counts().items() if v
                )
                log.info("directory source %s: %s", source.name, what or "no change")
                ran.append(source.name)
        return ran
