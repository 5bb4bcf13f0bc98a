"""``openmfa farm rollback``: the rolling upgrade's steps (``rolling.FarmSteps``) in reverse,
with ``openmfa rollback`` as the act on each node instead of ``openmfa upgrade``."""

from __future__ import annotations

import time

from ..errors import RollingUpgradeFailed
from ..store.database import Store
from .balancer import Balancer
from .move import Act, Pacing, nothing
from .promotion import tell_members
from .rolling import FarmSteps, Say
from .wire import Hello, RollbackPlan


class FarmRollback:
    """``openmfa farm rollback``: every node back to the release before its last upgrade, one
    at a time, while the farm keeps serving — possible until ``farm finalize`` moved the data
    format (refused after, with what to do instead).

    The rolling upgrade in reverse: the hosts beside the nodes first; then each subordinate
    drained, ``openmfa rollback`` on its host (its pre-upgrade copy comes back with the audit
    events recorded since, it is told who the master is and catches up), back in the load
    balancer; then a rolled-back node takes the master role in a planned handover and the
    former master goes back the same way. A shared database stays as it is. A node already back
    is skipped, so a rerun resumes (from any node still on the newer release once the master is
    back)."""

    def __init__(
        self,
        store: Store,
        balancer: Balancer,
        say: Say,
        *,
        pacing: Pacing | None = None,
        component_lbs: dict[str, Balancer] | None = None,
        dry_run: bool = False,
    ) -> None:
        self.steps = FarmSteps(
            store, balancer, say, pacing=pacing or Pacing(), component_lbs=component_lbs
        )
        self.say = say
        self.dry_run = dry_run

    def act(self, target: str, *, tell: bool) -> Act:
        """``openmfa rollback`` on the node's host. The release rolled back to may be one that
        cannot take open RADIUS challenges over; with ``tell``, the node is told who the master
        is as soon as it runs ``target`` (its restored copy may name an older one)."""
        return Act(
            target=target,
            path="/v1/farm/rollback",
            body={},
            doing="rolling back",
            carry_radius=False,
            settle=self._settle,
            on_release=self._tell if tell else nothing,
        )

    def run(self) -> None:
        steps = self.steps
        nodes = steps.members()
        rollout = steps.rollout(nodes)
        if self.dry_run:
            self._show_plan(nodes)
            return
        components = rollout.components()
        self.say(f"rolling back the farm of {len(nodes)} nodes and {len(components)} other hosts")
        status = steps.preflight(nodes, reason="before-farm-rollback")
        check_rollback(status)
        rollout.rollback(components)  # the other hosts first: the reverse of the upgrade
        plans: dict[str, RollbackPlan] = {
            n: s.rollback for n, s in status.items() if s.rollback is not None
        }
        if not plans:
            self.say("no node has an upgrade to roll back")
            return
        target = sorted({p.to for p in plans.values()})[0]
        self.say(f"{len(plans)} nodes go back to {target}")
        move = steps.node_move(nodes)
        if steps.m.shared:
            act = self.act(target, tell=False)
            for name in sorted(plans, key=lambda n: n == steps.me):
                move(name, nodes[name], act)
            return
        act = self.act(target, tell=True)
        steps.master_last(
            nodes, status, sorted(plans), lambda n: move(n, nodes[n], act), "rolled back"
        )

    def _show_plan(self, nodes: dict[str, str]) -> None:
        self.say("plan: roll the farm back (nothing is changed now)")
        self.say("1. the other hosts, one at a time (adapters, portals, mobile services):")
        for line in self.steps.inventory_lines(nodes, None):
            self.say(line)
        self.say("2. the nodes, one at a time (subordinates first, then the master):")
        for n, h in self.steps.statuses(nodes).items():
            if h is None:
                self.say(f"  {n:<20}does not answer: the rollback would stop here")
            elif h.rollback is None:
                self.say(f"  {n:<20}{h.role:<12} {h.release}: nothing to roll back")
            else:
                self.say(f"  {n:<20}{h.role:<12} {h.release} -> {h.rollback.to}")

    def _tell(self, name: str, url: str) -> None:
        tell_members(self.steps.store, self.steps.m, {name: url}, skip=set())

    def _settle(self, name: str, url: str) -> None:
        """Events this node recorded reach the master before its copy goes back (those that
        do not yet are carried across the restore and relayed after)."""
        steps = self.steps
        deadline = time.monotonic() + steps.pacing.drain_timeout
        while (said := steps.peers.hello(url)) is not None and said.audit_pending:
            if time.monotonic() > deadline:
                self.say(f"[{name}] audit events not yet relayed; they are relayed after")
                return
            time.sleep(0.2)


def check_rollback(status: dict[str, Hello]) -> None:
    """Refused, before anything changes, when the nodes cannot all go back."""
    plans = {n: s.rollback for n, s in status.items() if s.rollback is not None}
    targets = sorted({p.to for p in plans.values()})
    if not targets:
        return
    if len(targets) > 1:
        raise RollingUpgradeFailed(
            f"the nodes would go back to different releases ({', '.join(targets)}); roll "
            "them back one by one (`openmfa rollback` on each subordinate). Nothing was changed"
        )
    target = targets[0]
    fmt = max(s.farm_format for s in status.values())
    finalized = sorted(n for n, p in plans.items() if p.format < fmt)
    if finalized:
        raise RollingUpgradeFailed(
            f"the farm's data format moved to {fmt} (`openmfa farm finalize`) after "
            f"{', '.join(finalized)} were upgraded, and {target} cannot read it. Nothing "
            "was changed. Going back now means restoring every node from its pre-upgrade "
            "backup, losing every change since (`openmfa backup restore` on each node)"
        )
    stuck = sorted(n for n, s in status.items() if n not in plans and s.release != target)
    if stuck:
        raise RollingUpgradeFailed(
            f"{', '.join(stuck)} runs neither {target} nor a release that goes back to it. "
            "Nothing was changed"
        )
