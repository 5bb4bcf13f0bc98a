"""Who waits for a push, and how they are woken: on the node's event loop, without a thread.

Two kinds of waiter:
- for a request's *outcome* (an SDK long-poll, a held RADIUS request): woken when an answer to
  that request is recorded on this node (``decided``), and at the latest when it expires;
- for *new requests* (the Mobile App Web Service, which wakes the devices): ``events_after``
  returns the requests opened since a sequence number, or waits for the next one.

A waiter costs one future; nothing polls the data file while waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable

from ..contract import PushEvent, PushEvents
from .push import Opened

KEEP_SECONDS = 130.0
"""New-request events are kept this long (longer than any request lives)."""
KEEP_EVENTS = 100_000
STILL_EVERY = 1.0
"""Seconds between two looks, during a wait for new requests, at whether this node is still
the master."""


class PushHub:
    """Used on the event loop only."""

    def __init__(self) -> None:
        self.boot = secrets.token_hex(8)
        self.seq = 0
        self._events: deque[tuple[float, PushEvent]] = deque()
        self._closed: deque[tuple[float, int, str]] = deque()
        self._new: asyncio.Future[None] | None = None
        self._outcome: dict[str, list[asyncio.Future[None]]] = {}
        self._closing = False

    def close(self) -> None:
        """The node is stopping: the mobile services' long-polls (``events_after``) answer now
        with what there is, so they ask again — of the next process — instead of holding the
        stop for as long as they wait. A push sign-in waiting for its answer still waits."""
        self._closing = True
        if self._new is not None and not self._new.done():
            self._new.set_result(None)
        self._new = None

    # -- told -----------------------------------------------------------------------------------

    def opened(self, opened: list[Opened]) -> None:
        now = time.monotonic()
        for o in opened:
            self.seq += 1
            event = PushEvent(seq=self.seq, request=o.request, devices=o.devices, webpush=o.webpush)
            self._events.append((now, event))
        while self._events and (
            self._events[0][0] < now - KEEP_SECONDS or len(self._events) > KEEP_EVENTS
        ):
            self._events.popleft()
        if self._new is not None and not self._new.done():
            self._new.set_result(None)
        self._new = None

    def decided(self, push_id: str) -> None:
        for fut in self._outcome.pop(push_id, []):
            if not fut.done():
                fut.set_result(None)
        now = time.monotonic()
        self.seq += 1
        self._closed.append((now, self.seq, push_id))
        while self._closed and (
            self._closed[0][0] < now - KEEP_SECONDS or len(self._closed) > KEEP_EVENTS
        ):
            self._closed.popleft()
        if self._new is not None and not self._new.done():
            self._new.set_result(None)
        self._new = None

    # -- waiting -------------------------------------------------------------------------------

    async def wait_decided(self, push_id: str, seconds: float) -> None:
        """Return when ``push_id`` is answered on this node, or after ``seconds``."""
        if seconds <= 0:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._outcome.setdefault(push_id, [])
        waiters.append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), seconds)
        except TimeoutError:
            pass
        finally:
            if not fut.done():
                fut.cancel()
            left = self._outcome.get(push_id)
            if left is not None:
                left[:] = [f for f in left if f is not fut]
                if not left:
                    del self._outcome[push_id]

    async def events_after(
        self,
        boot: str,
        after: int,
        seconds: float,
        still: Callable[[], Awaitable[bool]] | None = None,
    ) -> PushEvents:
        """Events after ``after`` (all kept ones if ``boot`` is not this node's run); waits up to
        ``seconds`` for one when there is none yet. ``still`` is asked every second of the wait:
        once it says no (this node handed the master's role over), the wait ends at once, so the
        mobile service asks again and is sent to the new master instead of hearing nothing of
        the requests opened there until its long-poll runs out."""
        if boot != self.boot:
            after = 0
        found = self._since(after)
        if not found and seconds > 0 and self.seq <= after and not self._closing:
            if self._new is None or self._new.done():
                self._new = asyncio.get_running_loop().create_future()
            new = self._new
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(new), min(left, STILL_EVERY))
                if new.done() or (still is not None and not await still()):
                    break
            found = self._since(after)
        closed = [pid for _, seq, pid in self._closed if seq > after]
        return PushEvents(boot=self.boot, seq=self.seq, events=found, closed=closed)

    def _since(self, after: int) -> list[PushEvent]:
        if not self._events or self._events[-1][1].seq <= after:
            return []
        return [e for _, e in self._events if e.seq > after]
