"""One node moved while the farm keeps serving: the step ``farm upgrade`` and ``farm rollback``
both take, node by node.

A move is always the same three parts, in this order:

1. Out: once enough other servers are up, the node leaves the load balancer, its sessions end
   (bounded), its RADIUS server opens no new challenge and the open ones finish (bounded), and
   what the act needs first is done (``Act.settle``).
2. The act: the node's farm agent is asked to move it (``Act.path``): upgrade from a bundle, or
   roll back. It is waited for until it runs ``Act.target`` and has every change.
3. Back: in the load balancer again, and waited for until it takes traffic (the balancer says so,
   ``/readyz`` answers 200, RADIUS answers Status-Server) before anything else is touched.

Invariants owned here: a node is never taken out unless ``min_up`` others serve; while it is
out, the others are watched and, if none is up, it is put back (it can still serve); whatever
fails after it went out, it is put back if it answers (on its old release or the new one), and
the failure is raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import msgspec

from ..errors import RollingUpgradeFailed
from ..radius.server import ClientTable
from . import membership
from .balancer import Balancer
from .follower import hello
from .health import RadiusProbe, Watch, others_serving, radius_address, sdk_ready
from .peers import call, checked
from .wire import Hello, RadiusState

Say = Callable[[str], None]
NodeStep = Callable[[str, str], None]
"""Something done to one node: (its name, its SDK URL)."""


class Peers(Protocol):
    """The other nodes, as a move reaches them (the one seam to the network)."""

    def hello(self, url: str) -> Hello | None:
        """What the node at ``url`` says of itself; None when it does not answer."""
        ...

    def post(self, url: str, path: str, body: dict[str, Any]) -> httpx.Response: ...

    def ready(self, url: str) -> bool:
        """Its ``/readyz`` answers 200."""
        ...


@dataclass(frozen=True)
class SignedPeers:
    """The farm's nodes over HTTP, each call signed with the farm key as node ``me``."""

    m: membership.Membership
    me: str

    def hello(self, url: str) -> Hello | None:
        return hello(self.m, self.me, url)

    def post(self, url: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return call(self.m.key, self.me, url, "POST", path, body=body)

    def ready(self, url: str) -> bool:
        return sdk_ready(url)


@dataclass(frozen=True)
class Pacing:
    """How long each part of a move may take, and how many other servers must be up."""

    node_timeout: float = 600.0
    """Seconds for the act, until the node runs the target and has every change."""
    drain_timeout: float = 60.0
    """Seconds for its sessions and RADIUS challenges to end (then it goes on)."""
    min_up: int = 1
    """Other servers that must be up before a node is taken out."""
    up_timeout: float = 120.0
    """Seconds to wait for a node put back to serve (and for ``min_up`` others to be up)."""


def nothing(name: str, url: str) -> None:
    """A step that does nothing (an act with nothing to settle first, or nothing to tell)."""
    return None


@dataclass(frozen=True)
class Act:
    """What is done to a drained node: its farm agent is asked (``POST path`` with ``body``) to
    move it to ``target``."""

    target: str
    path: str
    """``/v1/farm/upgrade`` or ``/v1/farm/rollback``."""
    body: dict[str, Any]
    doing: str
    """What the progress line says while it acts: ``upgrading in place``, ``rolling back``."""
    carry_radius: bool
    """The node's next process takes its open RADIUS challenges over (a newer release reads
    them; the release rolled back to may not)."""
    settle: NodeStep = field(default=nothing)
    """Done on the drained node before the act."""
    on_release: NodeStep = field(default=nothing)
    """Done once, as soon as the node runs ``target`` (before it has caught up)."""

    @property
    def verb(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def master_status(peers: Peers, nodes: dict[str, str]) -> Hello | None:
    """What the farm's master says of itself, asked of each node in turn."""
    for url in nodes.values():
        said = peers.hello(url)
        if said is not None and said.role == membership.MASTER:
            return said
    return None


class NodeMove:
    """Moves one node at a time: ``move(name, url, act)``. ``nodes`` is every node of the farm
    (name -> SDK URL): the others it watches while one is out."""

    def __init__(
        self,
        peers: Peers,
        balancer: Balancer,
        nodes: dict[str, str],
        say: Say,
        *,
        shared: bool,
        pacing: Pacing,
        radius_clients: Callable[[], ClientTable],
    ) -> None:
        self.peers = peers
        self.lb = balancer
        self.nodes = nodes
        self.say = say
        self.shared = shared
        """A shared-database farm: one position, nothing to catch up."""
        self.pacing = pacing
        self._radius_clients = radius_clients
        self._probe: RadiusProbe | None = None
        self._radius_unchecked: set[str] = set()

    def __call__(self, name: str, url: str, act: Act) -> None:
        """Out of the load balancer (once enough other servers are up), drained, acted on, back
        when it runs ``act.target`` and has every change, and waited for until it is up and
        taking traffic again."""

        def put_back() -> None:
            self.say(
                f"[{name}] no other server is up: {name} is put back in the load balancer "
                "while it can serve"
            )
            self.lb.ready(name)
            self._set_radius_draining(url, on=False, carry=False)

        with Watch(self.lb, self.nodes, name, put_back) as watch:
            try:
                while True:
                    self._wait_others_up(name)
                    self.say(f"[{name}] out of the load balancer")
                    watch.rearm()
                    self.lb.drain(name)
                    self._wait_drained(name)
                    self._drain_radius(name, url, act.carry_radius)
                    act.settle(name, url)
                    if not watch.was_put_back.is_set():
                        break
                    # put back while still on its release: wait for the others, drain again
                self.say(f"[{name}] {act.doing}")
                resp = self.peers.post(url, act.path, act.body)
                started = checked(resp, f"{name} could not start its {act.verb}")
                self._wait_moved(name, url, act, str(started.get("log", "")))
            except BaseException:
                if self.peers.hello(url) is not None:  # it serves (old or new release)
                    self._set_radius_draining(url, on=False, carry=False)
                    self.lb.ready(name)
                raise
        self.say(f"[{name}] back in the load balancer")
        self._set_radius_draining(url, on=False, carry=False)
        self.lb.ready(name)
        self._wait_serving(name, url)

    # -- out --------------------------------------------------------------------------------

    def _wait_others_up(self, name: str) -> None:
        """Before ``name`` is drained: at least ``min_up`` other servers take traffic (waited
        for, bounded by ``up_timeout``)."""
        need = max(1, self.pacing.min_up)
        deadline = time.monotonic() + self.pacing.up_timeout
        said = False
        while True:
            found = others_serving(self.lb, self.nodes, name)
            up, how = found if found is not None else ([], "the balancer (not answering)")
            if len(up) >= need:
                return
            if time.monotonic() > deadline:
                raise RollingUpgradeFailed(
                    f"{name} was not taken out: {len(up)} other servers are up according to "
                    f"{how} ({', '.join(up) or 'none'}), {need} needed (--min-up). Nothing was "
                    f"changed on {name}; bring the others up and run the same command again"
                )
            if not said:
                self.say(
                    f"[{name}] waiting until {need} other servers are up before it goes out "
                    f"(up now: {', '.join(up) or 'none'})"
                )
                said = True
            time.sleep(0.5)

    def _wait_drained(self, name: str) -> None:
        timeout = self.pacing.drain_timeout
        deadline = time.monotonic() + timeout
        while (n := self.lb.in_flight(name)) not in (None, 0):
            if time.monotonic() > deadline:
                self.say(f"[{name}] still {n} sessions after {timeout:.0f} s; going on")
                return
            time.sleep(0.2)

    def _set_radius_draining(self, url: str, *, on: bool, carry: bool) -> RadiusState | None:
        resp = self.peers.post(url, "/v1/farm/drain", {"on": on, "carry": on and carry})
        if resp.status_code == 404:
            return None  # a release without RADIUS draining: nothing to wait for
        said = checked(resp, "the node refused to drain RADIUS")["radius"]
        return None if said is None else msgspec.convert(said, RadiusState)

    def _drain_radius(self, name: str, url: str, carry: bool) -> None:
        """New RADIUS sign-ins that would be cut by the stop go to the other servers;
        challenges already issued here (the user is typing a code) are answered here until they
        finish or expire — or, with ``carry``, are taken over by the node's next process, so
        this node goes on opening them (only a push held open is waited for)."""
        said = self._set_radius_draining(url, on=True, carry=carry)
        if said is None:
            return
        timeout = self.pacing.drain_timeout
        deadline = time.monotonic() + timeout
        while said.open_challenges:
            if time.monotonic() > deadline:
                self.say(
                    f"[{name}] {said.open_challenges} RADIUS challenges still open after "
                    f"{timeout:.0f} s; going on"
                )
                return
            time.sleep(0.5)
            now = self.peers.hello(url)
            said = (now.radius if now is not None else None) or RadiusState()
        self.say(f"[{name}] RADIUS drained (no open challenges)")

    # -- the act ----------------------------------------------------------------------------

    def _wait_moved(self, name: str, url: str, act: Act, log: str) -> None:
        target = act.target
        released = False
        deadline = time.monotonic() + self.pacing.node_timeout
        while True:
            said = self.peers.hello(url)
            if said is not None and said.upgrading:
                said = None  # answers, but its upgrade is still verifying (it may roll back)
            if said is not None and said.release == target and not released:
                act.on_release(name, url)
                released = True
            if said is not None and said.release == target and self.shared:
                self.say(f"[{name}] runs {target}")
                return
            if said is not None and said.release == target:
                master = master_status(self.peers, self.nodes)
                if master is not None and said.position >= master.position:
                    self.say(f"[{name}] runs {target} and has every change")
                    return
            if time.monotonic() > deadline:
                raise RollingUpgradeFailed(
                    f"{name} did not come back on {target} within "
                    f"{self.pacing.node_timeout:.0f} s; see its log {log} (an upgrade rolls "
                    "itself back on failure), fix, and run the same `openmfa farm` command "
                    "again to resume"
                )
            time.sleep(0.5)

    # -- back -------------------------------------------------------------------------------

    def _wait_serving(self, name: str, url: str) -> None:
        """After ``name`` is put back: the load balancer reports it up and taking traffic (with
        ``--lb none``: it answers ``/readyz`` and RADIUS Status-Server), bounded by
        ``up_timeout``, before anything else is touched."""
        deadline = time.monotonic() + self.pacing.up_timeout
        while True:
            missing, how = self._not_serving(name, url)
            if not missing:
                self.say(f"[{name}] serves again: {how}")
                return
            if time.monotonic() > deadline:
                raise RollingUpgradeFailed(
                    f"{name} is back in the load balancer but not serving after "
                    f"{self.pacing.up_timeout:.0f} s: {missing}. See its health check (GET "
                    "/readyz) and its log; nothing else was touched. Fix it and run the same "
                    "command again"
                )
            time.sleep(0.3)

    def _not_serving(self, name: str, url: str) -> tuple[str, str]:
        """(what is still missing before ``name`` serves, "" when nothing; what was seen)."""
        how = ["it answers /readyz"]
        servers = self.lb.servers()
        if servers is not None:
            state = servers.get(name)
            if state is None:
                return f"the load balancer has no server {name}", ""
            if not state.serving:
                return f"the load balancer reports it {state.status} (weight {state.weight})", ""
            how.insert(0, "the load balancer reports it UP and taking traffic")
        if not self.peers.ready(url):
            return "its /readyz does not answer 200", ""
        said = self.peers.hello(url)
        listen = said.radius.listen if said is not None and said.radius is not None else ""
        where = radius_address(url, listen) if listen else None
        if where is not None:
            source, secret = self._radius_probe().secret_for(where)
            if secret is None:
                if name not in self._radius_unchecked:
                    self._radius_unchecked.add(name)
                    self.say(
                        f"[{name}] RADIUS on {where[0]}:{where[1]} not checked: no RADIUS client "
                        f"covers this host's address {source}"
                    )
            elif not self._radius_probe().answers(where, secret):
                return (
                    f"its RADIUS server on {where[0]}:{where[1]} does not answer Status-Server",
                    "",
                )
            else:
                how.append("it answers RADIUS Status-Server")
        return "", ", ".join(how)

    def _radius_probe(self) -> RadiusProbe:
        if self._probe is None:
            self._probe = RadiusProbe(self._radius_clients())
        return self._probe
