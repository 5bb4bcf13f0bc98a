"""Group commit for authentications: one thread decides and commits concurrent attempts together.

Every answer still waits for its own commit (replay state and audit are durable before the
client hears "accepted"), but N concurrent requests cost one transaction instead of N. One
thread also means attempts on one node are decided in order, so two copies of one code sent at
once cannot both pass.

The same thread can read datagram sockets itself (``add_source``): the RADIUS server's hot path
(receive, check, decide, commit, answer) then runs without handing each request from the event
loop to this thread and back, which on CPython costs more than the decision itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import selectors
import socket
import threading
from collections.abc import Callable, Sequence

from ..core.verification import Decision
from ..errors import OpenMfaError, StoreError
from .authenticator import Attempt, Authenticator

log = logging.getLogger("openmfa.sdk")

Result = Decision | OpenMfaError
Callback = Callable[[Result], None]
Job = tuple[Attempt, Callback, bool]
"""An attempt, what to do with its result, and whether that runs on this thread (True) or on
the event loop (False)."""
Task = Callable[[], None]
Source = Callable[[int], list[Job]]
"""Reads up to N datagrams from a ready socket; returns the attempts they ask for."""
_Item = Job | Task | None


class CommitQueue:
    def __init__(self, authenticator: Authenticator, max_batch: int = 128) -> None:
        self._auth = authenticator
        self._max = max_batch
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="openmfa-commit", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._sources: dict[int, Source] = {}
        self._sleeping = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    def stop(self) -> None:
        """Finish everything queued, then end the thread."""
        self._put(None)
        self._thread.join()
        self._auth.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    async def submit(self, attempt: Attempt) -> Result:
        assert self._loop is not None
        fut: asyncio.Future[Result] = self._loop.create_future()
        self._put((attempt, functools.partial(_set_result, fut), False))
        return await fut

    def submit_callback(self, attempt: Attempt, callback: Callback) -> None:
        """Queue ``attempt``; ``callback(result)`` runs on this queue's thread once committed."""
        self._put((attempt, callback, True))

    def call(self, task: Task) -> None:
        """Run ``task()`` on this queue's thread, in order with the attempts queued before it."""
        self._put(task)

    async def run(self, task: Callable[[Authenticator], None]) -> None:
        """Run ``task(authenticator)`` on this queue's thread, between two batches, and wait
        for it (how the authenticator's settings change: never from another thread)."""
        assert self._loop is not None
        loop = self._loop
        done: asyncio.Future[None] = loop.create_future()

        def step() -> None:
            try:
                task(self._auth)
            except BaseException as exc:
                loop.call_soon_threadsafe(_fail, done, exc)
                return
            loop.call_soon_threadsafe(_finish, done)

        self._put(step)
        await done

    def add_source(self, sock: socket.socket, read: Source) -> None:
        """From now on this thread calls ``read(limit)`` whenever ``sock`` is readable."""
        sock.setblocking(False)

        def attach() -> None:
            self._sources[sock.fileno()] = read
            self._selector.register(sock, selectors.EVENT_READ, read)

        self.call(attach)

    def remove_source(self, sock: socket.socket) -> None:
        """Stop reading ``sock``; returns once this thread no longer touches it."""
        done = threading.Event()

        def detach() -> None:
            if self._sources.pop(sock.fileno(), None) is not None:
                self._selector.unregister(sock)
            done.set()

        if self._thread.is_alive():
            self.call(detach)
            done.wait()

    def _put(self, item: _Item) -> None:
        self._queue.put(item)
        # The worker sets _sleeping and then looks at the queue once more before it waits, so
        # either it sees this item or this sees it sleeping (no lost wake-up).
        if self._sleeping:
            with contextlib.suppress(BlockingIOError):  # full: already signalled
                self._wake_w.send(b"\0")

    def _work(self) -> None:
        stopping = False
        while not stopping:
            jobs: list[Job] = []
            while len(jobs) < self._max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                if isinstance(item, tuple):
                    jobs.append(item)
                else:
                    self._run_task(item)
            for read in list(self._sources.values()):
                if len(jobs) < self._max:
                    jobs.extend(self._read(read, self._max - len(jobs)))
            if jobs:
                self._deliver(jobs, self._decide(jobs))
            elif not stopping:
                self._wait()

    def _wait(self) -> None:
        self._sleeping = True
        try:
            if self._queue.empty():
                self._selector.select()
        finally:
            self._sleeping = False
        try:
            while self._wake_r.recv(512):
                pass
        except BlockingIOError:
            pass

    def _read(self, read: Source, limit: int) -> list[Job]:
        try:
            return read(limit)
        except Exception:
            log.exception("reading a socket on the commit thread failed")
            return []

    def _run_task(self, task: Task) -> None:
        try:
            task()
        except Exception:
            log.exception("a task on the commit thread failed")

    def _decide(self, batch: list[Job]) -> Sequence[Result]:
        attempts = [a for a, _, _ in batch]
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

    def _deliver(self, batch: list[Job], results: Sequence[Result]) -> None:
        on_loop: list[tuple[Callback, Result]] = []
        for (_, callback, here), result in zip(batch, results, strict=True):
            if here:
                try:
                    callback(result)
                except Exception:
                    log.exception("a caller failed to take its authentication result")
            else:
                on_loop.append((callback, result))
        if on_loop:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(_resolve, on_loop)


def _finish(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _fail(fut: asyncio.Future[None], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _set_result(fut: asyncio.Future[Result], result: Result) -> None:
    if not fut.done():
        fut.set_result(result)


def _take(callback: Callback, result: Result) -> None:
    try:
        callback(result)
    except Exception:
        log.exception("a caller failed to take its authentication result")


def _resolve(results: list[tuple[Callback, Result]]) -> None:
    for callback, result in results:
        _take(callback, result)
