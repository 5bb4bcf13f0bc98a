"""A push sign-in decided at a node promoted to master a moment ago: the one retry.

The farm watcher tells the authenticator of a new role at its next tick (a second or so).
Until then the authenticator still runs as a subordinate's: a push it decides is left pending
with no request opened (``Decision.pending`` is None), for the caller to open at the master —
which is now this node. ``decide_push`` decides such an attempt again, every
``PROMOTED_PAUSE`` seconds, until the authenticator opens the push here (``PROMOTED_TRIES``
times at most: 5 s). It is for every caller that opens pushes through the commit queue (the
SDK's ``/v1/authenticate``, RADIUS), so one pair of numbers holds for all of them.
"""

from __future__ import annotations

import asyncio

from anyio import to_thread

from ..core.verification import Decision, Reason
from .authenticator import Attempt
from .commit_queue import CommitQueue, Result
from .push import PushService

PROMOTED_PAUSE = 0.25
PROMOTED_TRIES = 20
"""Decisions of one push sign-in at most, ``PROMOTED_PAUSE`` seconds apart (5 s in all)."""


def unopened(result: Result) -> bool:
    """A push left pending with no request opened here: a subordinate's authenticator's
    answer (the caller opens the push at the master), or a just-promoted master's."""
    return isinstance(result, Decision) and result.reason is Reason.PENDING and not result.pending


async def decide_push(
    queue: CommitQueue,
    attempt: Attempt,
    push: PushService,
    *,
    here: bool = False,
    asked: bool = False,
    tries: int = PROMOTED_TRIES,
    pause: float = PROMOTED_PAUSE,
) -> Result:
    """``attempt`` decided through the commit queue, and decided again while its push is left
    unopened although this node's data file says it is the master (promoted a moment ago).

    ``here``: the caller has no way to open a push at another node (the SDK's
    ``/v1/authenticate``, the portal's second step), so a push still unopened at the end is
    refused (``NotMaster`` naming the master, whom the SDK clients then ask); and one the caller
    ``asked`` for by name (``method: push``) is refused so before any decision. (A code that
    reads "push" is no such ask: a key that may not push gets its decision, not the master's
    address.) Without it (RADIUS, which opens the push at the
    master itself) the last result is returned as it is: a decision (with a push opened, or
    none to open), an error, or a push still unopened."""
    if here and asked:
        await to_thread.run_sync(push.require_master)
    result = await queue.submit(attempt)
    for _ in range(tries - 1):
        if not unopened(result) or not await to_thread.run_sync(push.is_master):
            break
        await asyncio.sleep(pause)
        result = await queue.submit(attempt)
    if here and unopened(result):
        await to_thread.run_sync(push.require_master)
    return result
