"""``openmfa farm upgrade`` and ``openmfa farm rollback``: the seed's farm procedure as one
command each, safe to rerun.

The upgrade:

1. Pre-flight: every node answers, every subordinate has every change, and a verified backup of
   the master's data is taken. Nothing changes if any of that fails.
2. Each subordinate in turn is moved (``move.NodeMove``): out of the load balancer, drained,
   upgraded in place (``openmfa upgrade`` on its host, through its farm agent), back into the
   load balancer once it runs the new release and has caught up.
3. Promote an upgraded subordinate (a planned handover: no write is lost), then upgrade the
   former master the same way, now a subordinate.
4. The hosts beside the nodes (``rollout``), then finalize the farm's data format (unless held).

The rollback (``rollback.FarmRollback``) takes the same steps in reverse, with another act.
A node already at the target release is skipped, so a rerun after a failure resumes. On a
failure the command stops, leaves the node it was working on back in the load balancer if it
serves, and says what to do.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import RollingUpgradeFailed
from ..install.releases import open_bundle
from ..node.radius_clients import RadiusClients
from ..radius.server import ClientTable
from ..store.backups import Backups
from ..store.database import Store
from . import membership
from .balancer import Balancer
from .components import answering, inventory
from .move import Act, NodeMove, Pacing, Peers, SignedPeers, master_status
from .peers import checked
from .promotion import handover, tell_members
from .rollout import ComponentRollout, plan_lines, rollout_key
from .wire import Hello

Say = Callable[[str], None]


def bundle_version(bundle: Path) -> str:
    with tempfile.TemporaryDirectory() as scratch:
        version, _ = open_bundle(bundle, Path(scratch))
    return version


class FarmSteps:
    """What the upgrade and the rollback share: the farm as this node sees it, the pre-flight,
    the order of the nodes (subordinates first, the master last after a handover), the hosts
    beside the nodes, and the move each node goes through."""

    def __init__(
        self,
        store: Store,
        balancer: Balancer,
        say: Say,
        *,
        pacing: Pacing,
        component_lbs: dict[str, Balancer] | None,
    ) -> None:
        self.store = store
        self.lb = balancer
        self.say = say
        self.pacing = pacing
        self.component_lbs = component_lbs or {}
        m = membership.load(store)
        if m is None:
            raise RollingUpgradeFailed("this node is not in a farm")
        self.m = m
        self.me = store.node_name
        self.peers: Peers = SignedPeers(m, self.me)
        """Signed with the farm key, which a handover keeps."""

    def members(self) -> dict[str, str]:
        return membership.members(self.store)

    def node_move(self, nodes: dict[str, str]) -> NodeMove:
        store = self.store
        return NodeMove(
            self.peers,
            self.lb,
            nodes,
            self.say,
            shared=self.m.shared,
            pacing=self.pacing,
            radius_clients=lambda: ClientTable(RadiusClients(store).all()),
        )

    def rollout(self, nodes: dict[str, str]) -> ComponentRollout:
        return ComponentRollout(
            self.m,
            self.me,
            {**nodes, self.me: self.m.self_url},
            self.component_lbs,
            self.say,
            timeout=self.pacing.node_timeout,
            drain_timeout=self.pacing.drain_timeout,
            up_timeout=self.pacing.up_timeout,
        )

    def statuses(self, nodes: dict[str, str]) -> dict[str, Hello | None]:
        return {n: self.peers.hello(u) for n, u in sorted(nodes.items())}

    def inventory_lines(self, nodes: dict[str, str], target: str | None) -> list[str]:
        """The plan's lines for the hosts beside the nodes, in their order."""
        seen, _ = inventory(self.m, self.me, {**nodes, self.me: self.m.self_url})
        lines = plan_lines(sorted(seen, key=rollout_key), target) or ["  none in the inventory"]
        silent = [c.name for c in seen if not answering(c)]
        if silent and target is not None:
            lines.append(
                f"  not answering: {', '.join(silent)} (the upgrade would stop before any change)"
            )
        return lines

    def preflight(self, nodes: dict[str, str], reason: str) -> dict[str, Hello]:
        self.say("[pre-flight] every node answers and has every change")  # (shared: one database)
        status: dict[str, Hello] = {}
        for name, url in sorted(nodes.items()):
            said = self.peers.hello(url)
            if said is None:
                raise RollingUpgradeFailed(
                    f"{name} does not answer at {url}; start it (or fix the network) first. "
                    "Nothing was changed"
                )
            status[name] = said
        masters = [n for n, s in status.items() if s.role == membership.MASTER]
        if self.m.shared:
            masters = [self.me]  # one database: nothing to catch up; back it up from here
        elif len(masters) != 1:
            raise RollingUpgradeFailed(f"expected one master, found {masters or 'none'}")
        else:
            self._wait_caught_up(nodes, status[masters[0]], timeout=60)
        if masters[0] == self.me:
            info = Backups(self.store.data_dir, self.store.data_dir.config()).create(reason)
            what = "the shared database" if self.m.shared else "the master"
            self.say(f"[pre-flight] backup {info.id} of {what} taken and verified")
        return status

    def _wait_caught_up(self, nodes: dict[str, str], master: Hello, timeout: float) -> None:
        """Every node holds the master's newest change (polled, bounded by ``timeout``)."""
        goal = master.position
        deadline = time.monotonic() + timeout
        for name, url in sorted(nodes.items()):
            while (said := self.peers.hello(url)) is None or said.position < goal:
                if time.monotonic() > deadline:
                    where = "no answer" if said is None else f"at {said.position}"
                    raise RollingUpgradeFailed(
                        f"{name} has not caught up with the master ({where}, master at {goal}); "
                        "see `openmfa farm status`. Nothing was changed"
                    )
                time.sleep(0.2)

    def master_last(
        self,
        nodes: dict[str, str],
        status: dict[str, Hello],
        todo: list[str],
        move: Callable[[str], None],
        done: str,
    ) -> None:
        """Each node of ``todo`` moved in turn, subordinates first; then the master hands its
        role to a node already moved (a planned handover: no write is lost) and moves too."""
        master = next(n for n, s in status.items() if s.role == membership.MASTER)
        for name in sorted(n for n in todo if n != master):
            move(name)
        if master not in todo:
            return
        others = [n for n in sorted(nodes) if n != master]
        if not others:
            raise RollingUpgradeFailed(
                f"a farm of one node cannot stay online while its master is {done}; "
                "join a second node first"
            )
        command = "upgrade" if done == "upgraded" else "rollback"
        if master != self.me:
            raise RollingUpgradeFailed(
                f"the master is {master}; run `openmfa farm {command}` there to continue"
            )
        self.say(f"promoting {others[0]} ({done}) before the master is {done}")
        self.m = handover(self.store, self.m, others[0], nodes, timeout=120)
        tell_members(self.store, self.m, nodes, skip={others[0], self.me})
        # This node's data file may be replaced under us (a rollback restores it): close our
        # connections while it is still the file they opened (a stale SQLite connection closed
        # later could remove the new file's write-ahead log).
        self.store.engine.dispose()
        move(master)

    def finalize(self, nodes: dict[str, str]) -> None:
        master = master_status(self.peers, nodes)
        if master is None:
            raise RollingUpgradeFailed("no master answers; run `openmfa farm finalize` later")
        self.finalize_at(master.url)

    def finalize_at(self, url: str) -> None:
        done = checked(self.peers.post(url, "/v1/farm/finalize", {}), "finalize was refused")
        self.say(f"[finalize] the farm's data format is {done['format']}")


class FarmUpgrade:
    """``openmfa farm upgrade``: every node to the bundle's release, then the hosts beside
    them, then finalize (unless ``hold``)."""

    def __init__(
        self,
        store: Store,
        bundle: Path,
        balancer: Balancer,
        say: Say,
        *,
        hold: bool = False,
        pacing: Pacing | None = None,
        component_lbs: dict[str, Balancer] | None = None,
        dry_run: bool = False,
    ) -> None:
        self.steps = FarmSteps(
            store, balancer, say, pacing=pacing or Pacing(), component_lbs=component_lbs
        )
        self.bundle = bundle.resolve()
        self.say = say
        self.hold = hold
        self.dry_run = dry_run

    def act(self, target: str) -> Act:
        """Upgrade in place from the bundle; a drained node's next process takes its open RADIUS
        challenges over (the new release, being newer, reads them; an older node ignores the
        word)."""
        return Act(
            target=target,
            path="/v1/farm/upgrade",
            body={"bundle": str(self.bundle)},
            doing="upgrading in place",
            carry_radius=True,
        )

    def run(self) -> None:
        steps = self.steps
        target = bundle_version(self.bundle)
        nodes = steps.members()
        rollout = steps.rollout(nodes)
        if self.dry_run:
            self._show_plan(nodes, target)
            return
        components = rollout.components()  # one that does not answer: nothing is changed
        self.say(
            f"rolling upgrade of {len(nodes)} nodes and {len(components)} other hosts to "
            f"{target} from {self.bundle}"
        )
        status = steps.preflight(nodes, reason="before-farm-upgrade")
        move, act = steps.node_move(nodes), self.act(target)
        if steps.m.shared:
            # No master to move: every node upgraded the same way in turn (this one last). The
            # first upgraded node migrates the shared schema; a release's migrations keep the
            # previous release working until finalize.
            order = sorted(nodes, key=lambda n: n == steps.me)
            todo = [n for n in order if status[n].release != target]
            if not todo:
                self.say("every node runs the new release already")
            for name in todo:
                move(name, nodes[name], act)
            rollout.upgrade(rollout.components(), target, str(self.bundle))
            if self.hold:
                self.say("finalize held: run `openmfa farm finalize` when ready")
                return
            steps.finalize_at(nodes.get(steps.me, steps.m.self_url))
            return
        todo = [n for n in sorted(nodes) if status[n].release != target]
        if not todo:
            self.say("every node runs the new release already")
        steps.master_last(nodes, status, todo, lambda n: move(n, nodes[n], act), "upgraded")
        rollout.upgrade(rollout.components(), target, str(self.bundle))
        if self.hold:
            self.say("finalize held: run `openmfa farm finalize` on the master when ready")
            return
        steps.finalize(nodes)

    def _show_plan(self, nodes: dict[str, str], target: str) -> None:
        """``--dry-run``: what the command would do, host by host; nothing is changed."""
        status = self.steps.statuses(nodes)
        self.say(f"plan: upgrade to {target} from {self.bundle} (nothing is changed now)")
        self.say("1. pre-flight: every node answers and has every change; a verified backup")
        master = next((n for n, h in status.items() if h is not None and h.role == "master"), "")
        order = sorted(n for n in nodes if n != master) + ([master] if master else [])
        self.say("2. the nodes, one at a time (drained from the load balancer and RADIUS):")
        for n in order:
            h = status[n]
            if h is None:
                self.say(f"  {n:<20}does not answer: the upgrade would stop here")
            elif h.release == target:
                self.say(f"  {n:<20}{h.role:<12} runs {target} already")
            else:
                extra = (
                    " (after handing the master role to an upgraded node)" if n == master else ""
                )
                self.say(f"  {n:<20}{h.role:<12} {h.release} -> {target}{extra}")
        self.say("3. the other hosts, one at a time (mobile services, portals, adapters):")
        for line in self.steps.inventory_lines(nodes, target):
            self.say(line)
        self.say(
            "4. " + ("finalize held (--hold)" if self.hold else "finalize the farm's data format")
        )
