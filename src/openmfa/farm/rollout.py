"""The hosts beside the nodes, upgraded (or rolled back) one at a time by ``openmfa farm
upgrade`` (``farm rollback``) once the nodes are done (before they start).

Order: mobile-service hosts, then portal hosts, then console hosts (no load balancer: one
operator's page may need a second try while it restarts, and the nodes are already new), then
adapter hosts; rollback the reverse. For each: another host of its kind must be up in its load
balancer (``--haproxy-mobile-backend``, ``--haproxy-portal-backend``; the server names are the
components' names); it is drained and its open requests finish (a phone's answer goes to the
other host: pushes live on the nodes; a portal's sign-ins under way finish, and portals sharing
a ``session_key_file`` take each other's signed-in sessions), then set to maintenance, so a
session kept on it by a persistence cookie goes to another host too; the order is left with
every node and the component starts it at its next report; the orchestrator waits until the
component reports the target release, healthy, with no upgrade under way, clears the order and
puts it back. A component that comes back on its old release (its upgrade failed and rolled itself
back) or says it cannot start the order stops the command, with what it said.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from ..contract import ComponentOrder
from ..errors import BalancerError, RollingUpgradeFailed
from .balancer import Balancer, NoBalancer
from .components import (
    REPORT_EVERY_DURING,
    SILENT_AFTER,
    answering,
    inventory,
    tell_every_node,
)
from .membership import Membership
from .wire import ComponentSeen

Say = Callable[[str], None]
KIND_ORDER = ("mobile", "portal", "console", "adapter")
"""The order in which kinds are upgraded; rollback goes the other way."""
NAMES = {
    "mobile": "mobile-service host",
    "portal": "portal host",
    "console": "console host",
    "adapter": "adapter host",
}


class ComponentRollout:
    def __init__(
        self,
        m: Membership,
        me: str,
        nodes: dict[str, str],
        balancers: dict[str, Balancer],
        say: Say,
        *,
        timeout: float = 600.0,
        drain_timeout: float = 60.0,
        up_timeout: float = 120.0,
    ) -> None:
        self.m = m
        self.me = me
        self.nodes = nodes
        self.balancers = balancers
        self.say = say
        self.timeout = timeout
        self.drain_timeout = drain_timeout
        self.up_timeout = up_timeout

    def components(self) -> list[ComponentSeen]:
        """Every component in the inventory, in upgrade order; refused when one does not
        answer (it could not be upgraded, and nobody would notice)."""
        seen, _ = inventory(self.m, self.me, self.nodes)
        silent = [c for c in seen if not answering(c)]
        if silent:
            names = ", ".join(f"{c.name} ({c.kind}, on {c.host})" for c in silent)
            raise RollingUpgradeFailed(
                f"{names} has not reported for more than {SILENT_AFTER:.0f} s: start it (it "
                "reports to the nodes by itself), or drop it from the inventory with `openmfa "
                "farm forget-component NAME` if it is gone for good. Nothing was changed"
            )
        return sorted(seen, key=rollout_key)

    def begin(self, components: list[ComponentSeen]) -> None:
        """Drop any order an interrupted run left; every node then tells its components to
        report every second while the rollout lasts."""
        for c in components:
            tell_every_node(self.m, self.me, self.nodes, c.name, None)

    def upgrade(self, components: list[ComponentSeen], target: str, bundle: str) -> None:
        self.begin(components)
        for c in components:
            if c.release == target:
                self.say(f"[{c.name}] runs {target} already")
                continue
            order = ComponentOrder(id=_order_id(), action="upgrade", target=target, bundle=bundle)
            self.move(c, order)

    def rollback(self, components: list[ComponentSeen]) -> None:
        self.begin(components)
        for c in reversed(components):
            if not c.rollback_to:
                self.say(f"[{c.name}] has no upgrade to roll back")
                continue
            order = ComponentOrder(id=_order_id(), action="rollback", target=c.rollback_to)
            self.move(c, order)

    def move(self, c: ComponentSeen, order: ComponentOrder) -> None:
        lb = self.balancers.get(c.kind, NoBalancer())
        what = NAMES[c.kind]
        self._wait_others_up(lb, c)
        self.say(f"[{c.name}] {what} out of its load balancer")
        lb.drain(c.name)
        try:
            self._wait_drained(lb, c)
            # Drained, a server still takes the sessions kept on it (the portal's persistence
            # cookie): a request of theirs sent on a pooled connection as the host stops was
            # lost, and HAProxy closed the person's connection without an answer. Now nothing
            # goes there; those sessions move on to another host (their cookies are good on
            # every one), and `ready` below puts it back.
            lb.maint(c.name)
            verb = "upgrading" if order.action == "upgrade" else "rolling back"
            self.say(f"[{c.name}] {verb} to {order.target} (the order waits at every node)")
            missed = tell_every_node(self.m, self.me, self.nodes, c.name, order)
            if len(missed) == len(self.nodes):
                raise RollingUpgradeFailed(f"no node took the order for {c.name}")
            self._wait_moved(c, order)
        except BaseException:
            tell_every_node(self.m, self.me, self.nodes, c.name, None)
            lb.ready(c.name)  # it serves, on one release or the other
            raise
        tell_every_node(self.m, self.me, self.nodes, c.name, None)
        self.say(f"[{c.name}] back in its load balancer")
        lb.ready(c.name)
        self._wait_serving(lb, c)

    def _wait_moved(self, c: ComponentSeen, order: ComponentOrder) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            seen, _ = inventory(self.m, self.me, self.nodes)
            now = next((s for s in seen if s.name == c.name), c)
            started = order.id in now.started
            if now.release == order.target and not now.upgrading and now.health == "ok":
                self.say(f"[{c.name}] runs {order.target} and reaches the nodes")
                return
            if started and now.health != "ok" and not now.upgrading:
                raise RollingUpgradeFailed(
                    f"{c.name} on {now.host}: {now.health}. It still serves on "
                    f"{now.release}; fix that and run the same command again"
                )
            moved_back = now.boot != c.boot and now.release != order.target
            if started and moved_back and not now.upgrading:
                raise RollingUpgradeFailed(
                    f"{c.name} on {now.host} came back on {now.release}, not "
                    f"{order.target}: its {order.action} failed and was undone (see "
                    "farm-upgrade.log / farm-rollback.log in its installation's root). It "
                    "serves; fix the cause and run the same command again"
                )
            if time.monotonic() > deadline:
                raise RollingUpgradeFailed(
                    f"{c.name} did not report {order.target} within {self.timeout:.0f} s (it "
                    f"says {now.release}, {now.health}); see farm-{order.action}.log in its "
                    "installation's root, then run the same command again"
                )
            time.sleep(REPORT_EVERY_DURING)  # no sooner than a new report

    def _wait_others_up(self, lb: Balancer, c: ComponentSeen) -> None:
        deadline = time.monotonic() + self.up_timeout
        while True:
            try:
                servers = lb.servers()
            except BalancerError:
                servers = None
            if servers is None:
                return  # no balancer to ask: its clients fail over by themselves
            if c.name not in servers:
                raise RollingUpgradeFailed(
                    f"the load balancer's backend for {NAMES[c.kind]}s has no server {c.name} "
                    "(its server names must be the components' names). Nothing was changed"
                )
            up = sorted(n for n, s in servers.items() if n != c.name and s.serving)
            if up:
                return
            if time.monotonic() > deadline:
                raise RollingUpgradeFailed(
                    f"{c.name} was not taken out: no other {NAMES[c.kind]} is up in its load "
                    "balancer. Nothing was changed on it; bring another up and run the same "
                    "command again"
                )
            time.sleep(0.5)

    def _wait_drained(self, lb: Balancer, c: ComponentSeen) -> None:
        """Its open connections closed, and what it says is under way (a portal's sign-ins
        between their steps) finished, bounded by ``drain_timeout``."""
        deadline = time.monotonic() + self.drain_timeout
        while (n := lb.in_flight(c.name)) not in (None, 0):
            if time.monotonic() > deadline:
                self.say(
                    f"[{c.name}] still {n} requests after {self.drain_timeout:.0f} s; going on"
                )
                return
            time.sleep(0.2)
        before: float | None = None  # the report out when the connections had closed
        while True:
            seen, _ = inventory(self.m, self.me, self.nodes)
            now = next((s for s in seen if s.name == c.name), c)
            if before is None:
                before = now.contact  # both times are a node's clock: compared alike
            elif now.contact > before and now.busy == 0:
                return
            if time.monotonic() > deadline:
                self.say(f"[{c.name}] still {now.busy} under way; going on")
                return
            time.sleep(REPORT_EVERY_DURING)  # no sooner than a new report

    def _wait_serving(self, lb: Balancer, c: ComponentSeen) -> None:
        deadline = time.monotonic() + self.up_timeout
        while True:
            servers = lb.servers()
            state = servers.get(c.name) if servers is not None else None
            if servers is None or (state is not None and state.serving):
                if servers is not None:
                    self.say(f"[{c.name}] serves again: the load balancer reports it UP")
                return
            if time.monotonic() > deadline:
                raise RollingUpgradeFailed(
                    f"{c.name} is back in its load balancer but not UP after "
                    f"{self.up_timeout:.0f} s; see its health check and log. Nothing else was "
                    "touched; fix it and run the same command again"
                )
            time.sleep(0.3)


def rollout_key(c: ComponentSeen) -> tuple[int, str]:
    return (KIND_ORDER.index(c.kind) if c.kind in KIND_ORDER else len(KIND_ORDER), c.name)


def _order_id() -> str:
    return secrets.token_hex(8)


def plan_lines(components: list[ComponentSeen], target: str | None) -> list[str]:
    """``--dry-run``: what would happen to each component (``target`` None: a rollback)."""
    lines = []
    for c in components if target is not None else list(reversed(components)):
        goal = target if target is not None else c.rollback_to
        if not goal:
            lines.append(f"  {c.name:<20}{c.kind:<8} on {c.host}: nothing to roll back")
        elif c.release == goal:
            lines.append(f"  {c.name:<20}{c.kind:<8} on {c.host}: runs {goal} already")
        else:
            lines.append(
                f"  {c.name:<20}{c.kind:<8} on {c.host}: {c.release} -> {goal} (drained, "
                f"{'upgraded' if target is not None else 'rolled back'}, put back)"
            )
    return lines
