"""The open challenges of RADIUS sign-ins (``flows``): an Access-Challenge's State, issued on
the event loop and taken on the commit thread.

Invariant owned here: a State is single-use, bound to the user and the RADIUS client it was
issued to (and to the push request it shows), and expires after ``[radius] challenge_seconds``.
The open ones pass to the node's next process at a restart (``carry``), never to another node.
"""

from __future__ import annotations

import secrets
import threading

from .carry import OpenState


class ChallengeStates:
    MAX = 100_000

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._open: dict[bytes, tuple[str, str, float, str]] = {}
        self._lock = threading.Lock()  # issued on the event loop, taken on the commit thread

    def issue(self, user: str, client: str, now: float, push_id: str = "") -> bytes:
        state = b"omfa" + secrets.token_bytes(16)
        with self._lock:
            if len(self._open) >= self.MAX:
                self._open = {k: v for k, v in self._open.items() if v[2] > now}
            self._open[state] = (user, client, now + self.seconds, push_id)
        return state

    def take(self, state: bytes, user: str, client: str, now: float) -> str | None:
        """The push request the State shows ("" for a code challenge); None: not valid."""
        with self._lock:
            entry = self._open.pop(state, None)
        if entry is None or entry[0] != user or entry[1] != client or now >= entry[2]:
            return None
        return entry[3]

    def open_count(self, now: float) -> int:
        """Challenges issued and not yet answered or expired (sign-ins in progress)."""
        with self._lock:
            return sum(1 for v in self._open.values() if v[2] > now)

    def carry(self, now: float) -> list[OpenState]:
        """The open ones, for this node's next process (``carry``)."""
        with self._lock:
            return [OpenState(k, *v) for k, v in self._open.items() if v[2] > now]

    def restore(self, states: list[OpenState], now: float) -> int:
        """Take over the open ones the previous process left; how many are still good."""
        good = [s for s in states if s.expires > now]
        with self._lock:
            for s in good:
                self._open[s.state] = (s.user, s.client, s.expires, s.push)
        return len(good)
