"""Group commit for authentications: one thread decides and commits concurrent attempts together.

Every answer still waits for its own commit (replay state and audit are durable before the
client hears "accepted"), but N concurrent requests cost one transaction instead of N. One
thread also means attempts on one node are decided in order, so two copies of one code sent at
once cannot both pass.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
from collections.abc import Callable, Sequence

from ..core.verification import Decision
from ..errors import OpenMfaError, StoreError
from .authenticator import Attempt, Authenticator

log = logging.getLogger("openmfa.sdk")

Result = Decision | OpenMfaError
Callback = Callable[[Result], None]
_Item = tuple[Attempt, Callback]


class CommitQueue:
    def __init__(self, authenticator: Authenticator, max_batch: int = 128) -> None:
        self._auth = authenticator
        self._max = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="openmfa-commit", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    def stop(self) -> None:
        """Finish everything queued, then end the thread."""
        self._queue.put(None)
        self._thread.join()
        self._auth.close()

    async def submit(self, attempt: Attempt) -> Result:
        assert self._loop is not None
        fut: asyncio.Future[Result] = self._loop.create_future()
        self._queue.put((attempt, functools.partial(_set_result, fut)))
        return await fut

    def submit_callback(self, attempt: Attempt, callback: Callback) -> None:
        """Queue ``attempt``; ``callback(result)`` runs on the event loop once it is committed."""
        self._queue.put((attempt, callback))

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            results = self._decide(batch)
            assert self._loop is not None
            self._loop.call_soon_threadsafe(_resolve, batch, results)

    def _decide(self, batch: list[_Item]) -> Sequence[Result]:
        attempts = [a for a, _ in batch]
        try:
            return self._auth.run(attempts)
        except Exception:
            if len(batch) == 1:
                log.exception("authentication could not be stored")
                return [
                    StoreError(
                        "the data file could not record this authentication; "
                        "try again, and check the node's log"
                    )
                ]
        # One bad attempt must not fail the others: decide them one by one.
        out: list[Result] = []
        for item in batch:
            out.extend(self._decide([item]))
        return out


def _set_result(fut: asyncio.Future[Result], result: Result) -> None:
    if not fut.done():
        fut.set_result(result)


def _resolve(batch: list[_Item], results: Sequence[Result]) -> None:
    for (_, callback), result in zip(batch, results, strict=True):
        try:
            callback(result)
        except Exception:
            log.exception("a caller failed to take its authentication result")
