"""The deployment's other hosts as a node knows them: portals, mobile services, adapters.

Each component reports to the nodes through the SDK every few seconds (``POST
/v1/components/report``, with its own key, whose scope must be its kind). The node that hears
it keeps what it said on its board, in memory and in ``components.json`` in its data directory
(so a restarted node still lists a component that has stopped answering), and answers with the
order the farm's orchestrator left for it, if any. ``farm status`` and ``farm upgrade`` ask every
node for its board (``hello``) and keep, for each component, the newest report any node heard.

Components reach the nodes and never the other way round: a host in a DMZ opens no port for
the farm, and needs no credential beyond the key it already has.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import httpx
import msgspec

from ..contract import ComponentOrder, ComponentReport
from .follower import hello
from .membership import Membership
from .peers import call
from .wire import ComponentSeen

BOARD_FILE = "components.json"
REPORT_EVERY = 5.0
"""Seconds between a component's reports (the node says so in each answer)."""
SILENT_AFTER = 20.0
"""A component not heard from for this long is listed as not answering."""
REPORT_EVERY_DURING = 1.0
"""...while the farm's orchestrator is at work (an order held or cleared in the last
``ROLLOUT_QUIET`` seconds): each host takes its order, and says it is back, within a second."""
ROLLOUT_QUIET = 300.0
STORE_EVERY = 30.0
"""A report that changes nothing but the time of contact is written at most this often."""


class ComponentBoard:
    """What this node heard from each component, and the orders it holds for them."""

    def __init__(self, data_dir: Path, node: str) -> None:
        self.path = data_dir / BOARD_FILE
        self.node = node
        self._lock = threading.Lock()
        self._seen: dict[str, ComponentSeen] = {}
        self._orders: dict[str, ComponentOrder] = {}
        self._stored = 0.0
        self._ordered = -ROLLOUT_QUIET
        with contextlib.suppress(OSError, msgspec.DecodeError, msgspec.ValidationError):
            for c in msgspec.json.decode(self.path.read_bytes(), type=list[ComponentSeen]):
                self._seen[c.name] = c

    def report(self, r: ComponentReport, now: float | None = None) -> ComponentOrder | None:
        now = time.time() if now is None else now
        seen = ComponentSeen(**msgspec.structs.asdict(r), contact=now, node=self.node)
        with self._lock:
            before = self._seen.get(r.name)
            self._seen[r.name] = seen
            moved = before is None or msgspec.structs.replace(before, contact=now) != seen
            if moved or now - self._stored >= STORE_EVERY:
                self._store(now)
            return self._orders.get(r.name)

    def seen(self) -> list[ComponentSeen]:
        with self._lock:
            return sorted(self._seen.values(), key=lambda c: c.name)

    def every(self, now: float | None = None) -> float:
        """The seconds a component should wait before its next report."""
        now = time.monotonic() if now is None else now
        with self._lock:
            busy = bool(self._orders) or now - self._ordered < ROLLOUT_QUIET
        return REPORT_EVERY_DURING if busy else REPORT_EVERY

    def order(self, name: str, order: ComponentOrder | None) -> None:
        """Hold ``order`` for the component (None: nothing more to do)."""
        with self._lock:
            self._ordered = time.monotonic()
            if order is None:
                self._orders.pop(name, None)
            else:
                self._orders[name] = order

    def forget(self, name: str) -> bool:
        with self._lock:
            self._orders.pop(name, None)
            found = self._seen.pop(name, None) is not None
            if found:
                self._store(time.time())
            return found

    def _store(self, now: float) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_bytes(msgspec.json.encode(sorted(self._seen.values(), key=lambda c: c.name)))
            os.replace(tmp, self.path)
            self._stored = now
        except OSError:  # a full disk must not stop sign-ins: the board lives in memory too
            pass


def merged(boards: list[list[ComponentSeen]]) -> list[ComponentSeen]:
    """Every component any node heard from, as the node that heard it last heard it."""
    newest: dict[str, ComponentSeen] = {}
    for board in boards:
        for c in board:
            if c.name not in newest or c.contact > newest[c.name].contact:
                newest[c.name] = c
    return sorted(newest.values(), key=lambda c: (c.kind, c.name))


def answering(c: ComponentSeen, now: float | None = None) -> bool:
    return (time.time() if now is None else now) - c.contact < SILENT_AFTER


def inventory(
    m: Membership, me: str, nodes: dict[str, str]
) -> tuple[list[ComponentSeen], list[str]]:
    """Every component the farm's ``nodes`` (name -> URL) heard from (the newest word on
    each), and the nodes that did not answer (what they heard is missing)."""
    boards: list[list[ComponentSeen]] = []
    silent = []
    for name, url in sorted(nodes.items()):
        said = hello(m, me, url)
        if said is None:
            silent.append(name)
        else:
            boards.append(said.components)
    return merged(boards), silent


def tell_every_node(
    m: Membership,
    me: str,
    nodes: dict[str, str],
    name: str,
    order: ComponentOrder | None,
    *,
    forget: bool = False,
) -> list[str]:
    """Hold ``order`` for component ``name`` on every node (None: clear it; ``forget``: drop
    the component from every board). The nodes that did not take it."""
    body = {"name": name, "order": msgspec.to_builtins(order), "forget": forget}
    missed = []
    for node, url in sorted(nodes.items()):
        try:
            resp = call(m.key, me, url, "POST", "/v1/farm/components", body=body, timeout=5.0)
        except httpx.HTTPError:
            missed.append(node)
            continue
        if resp.status_code != 200:
            missed.append(node)
    return missed
