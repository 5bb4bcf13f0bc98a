"""A portal host's view of the sessions that ended, kept current from the node.

The forward-auth check runs before every proxied request and must not call the node; so every
``poll_seconds`` this host asks a node what ended since the last row it saw
(``GET /v1/portal/sessions/ended``, ``node.session_ends``) and keeps, in memory:

- the sessions ended one by one (their ids),
- per person (by *subject*, the node's keyed name for them), the moment before which every
  session of theirs ended (sign out everywhere, disabled, deleted, a lock),
- who is locked right now (a lock seen here also becomes a cut-off at the moment it was seen,
  so the sessions it ended stay ended once it is over).

Invariant owned here: a cookie stands only while the view is fresh. A host that has not heard
from a node for ``max_age_seconds`` (the node stopped, the network cut) refuses every cookie
until it hears again — it fails closed, it never lets in on old knowledge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from ..sdk.models import SessionsEnded

log = logging.getLogger("openmfa.portal")
PRUNE_EVERY = 600.0
"""Seconds between two sweeps of what is older than the node keeps."""


class RevocationView:
    def __init__(
        self,
        fetch: Callable[[int], Awaitable[SessionsEnded]],
        poll_seconds: float,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch = fetch
        self.poll = poll_seconds
        self.max_age = max_age_seconds
        self.clock = clock
        self.last_id = 0
        self.epoch = -1
        """The farm epoch of the last answer (-1: none yet)."""
        self.ended: dict[str, float] = {}
        """Session id -> when it ended."""
        self.cutoffs: dict[str, float] = {}
        """Subject -> every session of theirs issued at or before this moment has ended."""
        self.locked: frozenset[str] = frozenset()
        self.keep = 8 * 86400.0
        self.skew = 0.0
        """The node's clock minus this host's, at the last answer."""
        self.heard = float("-inf")
        """When (``clock``) a node last answered."""
        self.started = False
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._pruned = 0.0
        self.after: Callable[[], Awaitable[None]] | None = None
        """Run after each poll, in this loop (forward-auth's reports of what it let through:
        ``seen.CookieReports``); its errors are its own."""

    @property
    def fresh(self) -> bool:
        return self.clock() - self.heard <= self.max_age

    def stands(self, subject: str, session: str, issued_at: float, now: float) -> bool:
        """Whether the session ``session`` of ``subject``, issued at ``issued_at`` (the node's
        clock), still stands. ``now``: this host's clock."""
        if not self.fresh or subject in self.locked or session in self.ended:
            return False
        if issued_at <= now + self.skew - self.keep:
            return False
        return issued_at > self.cutoffs.get(subject, float("-inf"))

    def apply(self, page: SessionsEnded, local_now: float) -> bool:
        """Take one answer of the node in; False when it is of another farm epoch than the
        last (a promotion may have numbered rows again): ask again from the first row (what
        this host knows stays: every answer only ever ends more)."""
        if page.epoch != self.epoch:
            first = self.epoch == -1
            self.epoch, self.last_id = page.epoch, 0
            if not first and page.last_id:
                return False
        for e in page.ends:
            if e.session:
                self.ended[e.session] = e.at
            elif e.at > self.cutoffs.get(e.subject, float("-inf")):
                self.cutoffs[e.subject] = e.at
        for subject in page.locked:  # a lock ends the sessions before it, for good
            if page.now > self.cutoffs.get(subject, float("-inf")):
                self.cutoffs[subject] = page.now
        self.locked = frozenset(page.locked)
        self.last_id = max(self.last_id, page.last_id)
        self.keep = page.keep_seconds
        self.skew = page.now - local_now
        return True

    async def refresh(self) -> None:
        """Ask a node what is new (every page of it); the view is fresh once it answered."""
        async with self._lock:
            asked = self.clock()
            while True:
                page = await self.fetch(self.last_id)
                if not self.apply(page, time.time()):
                    continue  # another epoch: from the first row
                if not page.more:
                    break
            self.heard = asked
            self.started = True
            if asked - self._pruned > PRUNE_EVERY:
                self._prune(time.time() + self.skew)
                self._pruned = asked

    def _prune(self, node_now: float) -> None:
        horizon = node_now - self.keep
        self.ended = {k: v for k, v in self.ended.items() if v > horizon}
        self.cutoffs = {k: v for k, v in self.cutoffs.items() if v > horizon}

    async def first(self) -> None:
        """Start keeping the view (if not yet), and wait a moment for its first answer."""
        self.start()
        for _ in range(20):  # at most 2 s
            if self.started:
                return
            await asyncio.sleep(0.1)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        said = False
        while True:
            try:
                await self.refresh()
                if said:
                    log.info("the node answers again: forward-auth takes signed-in cookies")
                said = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the node down, a network error: keep asking
                if not said and not self.fresh:
                    log.warning(
                        "cannot learn which sessions ended (%s); forward-auth refuses every "
                        "cookie until a node answers",
                        type(exc).__name__,
                    )
                    said = True
            if self.after is not None:
                try:
                    await self.after()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("forward-auth's report of what it let through failed")
            await asyncio.sleep(self.poll)
