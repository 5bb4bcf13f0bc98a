"""The node's answer to ``GET /readyz``, kept current off the request path.

A load balancer asks ``/readyz`` every second or so and marks a node down after a few slow or
failed answers. The answer must therefore never wait: not for the thread pool, the data store,
a lock another transaction holds (a schema migration on a shared database), or a busy CPU
parsing migration scripts. A thread checks the store every ``every`` seconds; ``/readyz``
returns what it found last, from memory. A store that has not answered a check for
``stale_after`` seconds makes the node not ready: it could not serve either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("openmfa.node")


class Readiness:
    def __init__(
        self,
        check: Callable[[], tuple[bool, str]],
        every: float = 1.0,
        stale_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.check = check
        self.every = every
        self.stale_after = stale_after
        self.clock = clock
        self._last: tuple[bool, str, float] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        """Check the store once (blocking) and remember the answer."""
        try:
            ready, why = self.check()
        except Exception as exc:  # an unexpected fault is "not ready", never a crash
            ready, why = False, f"readiness check failed: {exc}"
        if self._last is not None and self._last[0] != ready:
            log.warning("readiness: %s", "ready" if ready else f"not ready ({why})")
        self._last = (ready, why, self.clock())

    def start(self) -> None:
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="openmfa-readiness", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def state(self) -> tuple[bool, str]:
        """(ready, why not), from memory."""
        last = self._last
        if last is None:
            return False, "the node is starting"
        ready, why, at = last
        age = self.clock() - at
        if age > self.stale_after:
            return False, f"the data store has not answered a readiness check for {age:.0f} s"
        return ready, why

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.refresh()
