"""Authentication state the master pushes to its subordinates with the change feed.

A subordinate claims every code it accepts at the master, so a code is used once in the farm
whatever its own copy says. Its copy should still move forward: an HOTP token used on other
nodes more times than the look-ahead window would otherwise fall out of this node's window, and
a node deciding alone (master unreachable) should know the steps and counters used elsewhere.

Invariant owned here: pushed state only ever moves a method's TOTP step or HOTP counter forward
(``max``), so a late or repeated push changes nothing. The journal lives in the master's memory;
after a restart (a new ``token``) subordinates start again from its current position.

A node is never sent back what it claimed itself: it stores its own acceptance in the
transaction that answers it, right after the master's "ok". Pushed back, the same step could
reach its data file between the claim and that transaction, and the node would then refuse its
own code as a replay (seen once in ~360 authentications of a rolling upgrade's load).
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from ..node.auth_state import forward
from ..store.database import Store

Advance = tuple[str, str, int]
"""(method id, "totp" | "hotp", the step or counter now used)."""
MAX_KEPT = 100_000
MAX_SENT = 5_000


class StateJournal:
    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        self._rows: deque[tuple[int, str, str, int, str]] = deque(maxlen=MAX_KEPT)
        """(position, method id, kind, value, the node that claimed it or "")."""
        self._next = 1
        self._lock = threading.Lock()

    @property
    def position(self) -> int:
        return self._next - 1

    def note(self, advances: Iterable[Advance], origin: str = "") -> None:
        """Record advances; ``origin`` names the subordinate that claimed them ("" the master)."""
        with self._lock:
            for method_id, kind, value in advances:
                self._rows.append((self._next, method_id, kind, value, origin))
                self._next += 1

    def news(self, token: str, since: int, node: str = "") -> bool:
        """Whether ``since`` would give the follower ``node`` something (its own claims
        alone do not wake its long-poll)."""
        if token != self.token:
            return True
        with self._lock:
            for n, _, _, _, origin in reversed(self._rows):
                if n <= since:
                    return False
                if not node or origin != node:
                    return True
        return False

    def since(self, token: str, since: int, node: str = "") -> dict[str, Any]:
        """What the follower ``node`` at (``token``, ``since``) has not seen, less its own
        claims (from now on if it cannot be told: another process's token, or older than
        what is kept)."""
        with self._lock:
            rows = list(self._rows)
            position = self._next - 1
        if token != self.token or (rows and since < rows[0][0] - 1):
            return {"token": self.token, "position": position, "rows": []}
        fresh: list[list[Any]] = []
        upto = since
        for n, m, k, v, origin in rows:
            if n <= since:
                continue
            if len(fresh) == MAX_SENT:
                break
            upto = n
            if not node or origin != node:
                fresh.append([m, k, v])
        return {"token": self.token, "position": upto, "rows": fresh}


def merge(store: Store, rows: list[list[Any]]) -> None:
    """Move this node's copy forward to the master's steps and counters (never back)."""
    with store.write() as conn:
        for method_id, kind, value in rows:
            if kind in ("totp", "hotp"):
                forward(conn, str(method_id), str(kind), int(value))
