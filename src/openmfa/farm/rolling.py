"""``openmfa farm upgrade``: the seed's farm procedure as one command, safe to rerun.

1. Pre-flight: every node answers, every subordinate has every change, and a verified backup of
   the master's data is taken. Nothing changes if any of that fails.
2. Each subordinate in turn: out of the load balancer, wait for its in-flight sessions, upgrade
   it in place (``openmfa upgrade`` on its host, through its farm agent), wait until it runs the
   new release and has caught up, back into the load balancer.
3. Promote an upgraded subordinate (a planned handover: no write is lost), then upgrade the
   former master the same way, now a subordinate.
4. Finalize the farm's data format (unless held).
A node already at the new release is skipped, so a rerun after a failure resumes. On a failure
the command stops, leaves the node it was working on back in the load balancer if it serves,
and says what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ..errors import RollingUpgradeFailed
from ..install.releases import open_bundle
from ..node.radius_clients import RadiusClients
from ..radius.server import ClientTable
from ..store.backups import Backups
from ..store.database import Store
from . import membership
from .balancer import Balancer
from .components import answering, inventory
from .follower import hello, wait_for_position
from .health import RadiusProbe, Watch, others_serving, radius_address, sdk_ready
from .peers import call, checked
from .promotion import handover, tell_members
from .rollout import ComponentRollout, plan_lines, rollout_key
from .wire import Hello, RadiusState, RollbackPlan

Say = Callable[[str], None]


def bundle_version(bundle: Path) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        version, _ = open_bundle(bundle, Path(scratch))
    return version


class RollingUpgrade:
    carry_radius = True
    """A drained node's next process takes its open RADIUS challenges over: the new release,
    being newer, reads them (``radius.carry``); an older node ignores the word."""

    def __init__(
        self,
        store: Store,
        bundle: Path,
        balancer: Balancer,
        say: Say,
        *,
        hold: bool = False,
        node_timeout: float = 600.0,
        drain_timeout: float = 60.0,
        min_up: int = 1,
        up_timeout: float = 120.0,
        component_lbs: dict[str, Balancer] | None = None,
        dry_run: bool = False,
    ) -> None:
        self.store = store
        self.component_lbs = component_lbs or {}
        self.dry_run = dry_run
        self.min_up = min_up
        self.up_timeout = up_timeout
        self._probe: RadiusProbe | None = None
        self._radius_unchecked: set[str] = set()
        self.bundle = bundle.resolve()
        self.lb = balancer
        self.say = say
        self.hold = hold
        self.node_timeout = node_timeout
        self.drain_timeout = drain_timeout
        m = membership.load(store)
        if m is None:
            raise RollingUpgradeFailed("this node is not in a farm")
        self.m = m
        self.me = store.node_name
        self.nodes: dict[str, str] = {}

    def run(self) -> None:
        target = bundle_version(self.bundle)
        nodes = self.nodes = membership.members(self.store)
        rollout = self._rollout(nodes)
        if self.dry_run:
            self._show_plan(nodes, rollout, target)
            return
        components = rollout.components()  # one that does not answer: nothing is changed
        self.say(
            f"rolling upgrade of {len(nodes)} nodes and {len(components)} other hosts to "
            f"{target} from {self.bundle}"
        )
        status = self._preflight(nodes)
        if self.m.shared:
            self._upgrade_shared(nodes, status, target, rollout)
            return
        todo = [n for n in sorted(nodes) if status[n].release != target]
        if not todo:
            self.say("every node runs the new release already")
        self._master_last(
            nodes, status, todo, lambda n: self._upgrade_node(n, nodes[n], target), "upgraded"
        )
        rollout.upgrade(rollout.components(), target, str(self.bundle))
        if self.hold:
            self.say("finalize held: run `openmfa farm finalize` on the master when ready")
            return
        self._finalize(nodes)

    def _master_last(
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

    def _rollout(self, nodes: dict[str, str]) -> ComponentRollout:
        return ComponentRollout(
            self.m,
            self.me,
            {**nodes, self.me: self.m.self_url},
            self.component_lbs,
            self.say,
            timeout=self.node_timeout,
            drain_timeout=self.drain_timeout,
            up_timeout=self.up_timeout,
        )

    def _show_plan(self, nodes: dict[str, str], rollout: ComponentRollout, target: str) -> None:
        """``--dry-run``: what the command would do, host by host; nothing is changed."""
        seen, _ = inventory(self.m, self.me, {**nodes, self.me: self.m.self_url})
        status = {n: hello(self.m, self.me, u) for n, u in sorted(nodes.items())}
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
        lines = plan_lines(sorted(seen, key=rollout_key), target)
        for line in lines or ["  none in the inventory"]:
            self.say(line)
        silent = [c.name for c in seen if not answering(c)]
        if silent:
            self.say(
                f"  not answering: {', '.join(silent)} (the upgrade would stop before any change)"
            )
        self.say(
            "4. " + ("finalize held (--hold)" if self.hold else "finalize the farm's data format")
        )

    def _upgrade_shared(
        self,
        nodes: dict[str, str],
        status: dict[str, Hello],
        target: str,
        rollout: ComponentRollout,
    ) -> None:
        """Shared-database farm: no master to move, every node upgraded the same way in turn
        (this one last). The first upgraded node migrates the shared schema; a release's
        migrations keep the previous release working until finalize."""
        todo = [n for n in sorted(nodes, key=lambda n: n == self.me) if status[n].release != target]
        if not todo:
            self.say("every node runs the new release already")
        for name in todo:
            self._upgrade_node(name, nodes[name], target)
        rollout.upgrade(rollout.components(), target, str(self.bundle))
        if self.hold:
            self.say("finalize held: run `openmfa farm finalize` when ready")
            return
        self._finalize_at(nodes.get(self.me, self.m.self_url))

    # -- steps ------------------------------------------------------------------------------

    def _preflight(
        self, nodes: dict[str, str], reason: str = "before-farm-upgrade"
    ) -> dict[str, Hello]:
        self.say("[pre-flight] every node answers and has every change")  # (shared: one database)
        status: dict[str, Hello] = {}
        for name, url in sorted(nodes.items()):
            said = hello(self.m, self.me, url)
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
        goal = master.position
        deadline = time.monotonic() + timeout
        for name, url in sorted(nodes.items()):
            left = max(0.0, deadline - time.monotonic())
            reached, said = wait_for_position(self.m, self.me, url, goal, left)
            if not reached:
                where = "no answer" if said is None else f"at {said.position}"
                raise RollingUpgradeFailed(
                    f"{name} has not caught up with the master ({where}, master at {goal}); "
                    "see `openmfa farm status`. Nothing was changed"
                )

    def _upgrade_node(self, name: str, url: str, target: str) -> None:
        self._move_node(name, url, target, "/v1/farm/upgrade", {"bundle": str(self.bundle)})

    def _move_node(
        self,
        name: str,
        url: str,
        target: str,
        path: str,
        body: dict[str, Any],
        on_release: Callable[[], None] | None = None,
    ) -> None:
        """Out of the load balancer (once enough other servers are up), drained, moved to
        ``target`` by its agent (``path``), back when it runs ``target`` and has every change,
        and waited for until it is up and taking traffic again. While it is out, the others are
        watched: if none is up, it is put back (it can serve)."""
        verb = path.rsplit("/", 1)[-1]

        def put_back() -> None:
            self.say(
                f"[{name}] no other server is up: {name} is put back in the load balancer "
                "while it can serve"
            )
            self.lb.ready(name)
            self._set_radius_draining(url, on=False)

        with Watch(self.lb, self.nodes, name, put_back) as watch:
            try:
                while True:
                    self._wait_others_up(name)
                    self.say(f"[{name}] out of the load balancer")
                    watch.rearm()
                    self.lb.drain(name)
                    self._wait_drained(name)
                    self._drain_radius(name, url)
                    self._settle(name, url)
                    if not watch.was_put_back.is_set():
                        break
                    # put back while still on its release: wait for the others, drain again
                self.say(
                    f"[{name}] {'upgrading in place' if verb == 'upgrade' else 'rolling back'}"
                )
                resp = call(self.m.key, self.me, url, "POST", path, body=body)
                started = checked(resp, f"{name} could not start its {verb}")
                self._wait_upgraded(name, url, target, str(started.get("log", "")), on_release)
            except BaseException:
                said = hello(self.m, self.me, url)
                if said is not None:  # it serves (old or new release): let it take traffic
                    self._set_radius_draining(url, on=False)
                    self.lb.ready(name)
                raise
        self.say(f"[{name}] back in the load balancer")
        self._set_radius_draining(url, on=False)
        self.lb.ready(name)
        self._wait_serving(name, url)

    def _wait_others_up(self, name: str) -> None:
        """Before ``name`` is drained: at least ``min_up`` other servers take traffic (waited
        for, bounded by ``up_timeout``)."""
        need = max(1, self.min_up)
        deadline = time.monotonic() + self.up_timeout
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

    def _wait_serving(self, name: str, url: str) -> None:
        """After ``name`` is put back: the load balancer reports it up and taking traffic (with
        ``--lb none``: it answers ``/readyz`` and RADIUS Status-Server), bounded by
        ``up_timeout``, before anything else is touched."""
        deadline = time.monotonic() + self.up_timeout
        while True:
            missing, how = self._not_serving(name, url)
            if not missing:
                self.say(f"[{name}] serves again: {how}")
                return
            if time.monotonic() > deadline:
                raise RollingUpgradeFailed(
                    f"{name} is back in the load balancer but not serving after "
                    f"{self.up_timeout:.0f} s: {missing}. See its health check (GET /readyz) and "
                    "its log; nothing else was touched. Fix it and run the same command again"
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
        if not sdk_ready(url):
            return "its /readyz does not answer 200", ""
        said = hello(self.m, self.me, url)
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
            self._probe = RadiusProbe(ClientTable(RadiusClients(self.store).all()))
        return self._probe

    def _settle(self, name: str, url: str) -> None:
        """What must be done on a drained node before it moves (nothing, for an upgrade)."""

    def _wait_drained(self, name: str) -> None:
        deadline = time.monotonic() + self.drain_timeout
        while (n := self.lb.in_flight(name)) not in (None, 0):
            if time.monotonic() > deadline:
                self.say(f"[{name}] still {n} sessions after {self.drain_timeout:.0f} s; going on")
                return
            time.sleep(0.2)

    def _set_radius_draining(self, url: str, *, on: bool) -> RadiusState | None:
        body = {"on": on, "carry": on and self.carry_radius}
        resp = call(self.m.key, self.me, url, "POST", "/v1/farm/drain", body=body)
        if resp.status_code == 404:
            return None  # a release without RADIUS draining: nothing to wait for
        said = checked(resp, "the node refused to drain RADIUS")["radius"]
        return None if said is None else msgspec.convert(said, RadiusState)

    def _drain_radius(self, name: str, url: str) -> None:
        """New RADIUS sign-ins that would be cut by the stop go to the other servers;
        challenges already issued here (the user is typing a code) are answered here until they
        finish or expire — or, in an upgrade, are taken over by the node's next process, so
        this node goes on opening them (only a push held open is waited for)."""
        said = self._set_radius_draining(url, on=True)
        if said is None:
            return
        deadline = time.monotonic() + self.drain_timeout
        while said.open_challenges:
            if time.monotonic() > deadline:
                self.say(
                    f"[{name}] {said.open_challenges} RADIUS challenges still open after "
                    f"{self.drain_timeout:.0f} s; going on"
                )
                return
            time.sleep(0.5)
            now = hello(self.m, self.me, url)
            said = (now.radius if now is not None else None) or RadiusState()
        self.say(f"[{name}] RADIUS drained (no open challenges)")

    def _wait_upgraded(
        self,
        name: str,
        url: str,
        target: str,
        log: str,
        on_release: Callable[[], None] | None = None,
    ) -> None:
        deadline = time.monotonic() + self.node_timeout
        while True:
            said = hello(self.m, self.me, url)
            if said is not None and said.upgrading:
                said = None  # answers, but its upgrade is still verifying (it may roll back)
            if said is not None and said.release == target and on_release is not None:
                on_release()
                on_release = None
            if said is not None and said.release == target and self.m.shared:
                self.say(f"[{name}] runs {target}")
                return
            if said is not None and said.release == target:
                master = self._master_status()
                if master is not None and said.position >= master.position:
                    self.say(f"[{name}] runs {target} and has every change")
                    return
            if time.monotonic() > deadline:
                raise RollingUpgradeFailed(
                    f"{name} did not come back on {target} within {self.node_timeout:.0f} s; "
                    f"see its log {log} (an upgrade rolls itself back on failure), fix, and "
                    f"run the same `openmfa farm` command again to resume"
                )
            time.sleep(0.5)

    def _master_status(self) -> Hello | None:
        for url in self.nodes.values():
            said = hello(self.m, self.me, url)
            if said is not None and said.role == membership.MASTER:
                return said
        return None

    def _finalize(self, nodes: dict[str, str]) -> None:
        master = self._master_status()
        if master is None:
            raise RollingUpgradeFailed("no master answers; run `openmfa farm finalize` later")
        self._finalize_at(master.url)

    def _finalize_at(self, url: str) -> None:
        resp = call(self.m.key, self.me, url, "POST", "/v1/farm/finalize", body={})
        done = checked(resp, "finalize was refused")
        self.say(f"[finalize] the farm's data format is {done['format']}")


class FarmRollback(RollingUpgrade):
    """``openmfa farm rollback``: every node back to the release before its last upgrade, one
    at a time, while the farm keeps serving — possible until ``farm finalize`` moved the data
    format (refused after, with what to do instead).

    The rolling upgrade in reverse: each subordinate drained, ``openmfa rollback`` on its host
    (its pre-upgrade copy comes back with the audit events recorded since, it is told who the
    master is and catches up), back in the load balancer; then a rolled-back node takes the
    master role in a planned handover and the former master goes back the same way. A shared
    database stays as it is. A node already back is skipped, so a rerun resumes (from any node
    still on the newer release once the master is back)."""

    carry_radius = False
    """The release rolled back to may be one that cannot take the challenges over."""

    def __init__(self, store: Store, balancer: Balancer, say: Say, **kw: Any) -> None:
        super().__init__(store, Path("."), balancer, say, hold=True, **kw)

    def run(self) -> None:
        nodes = self.nodes = membership.members(self.store)
        rollout = self._rollout(nodes)
        if self.dry_run:
            self._show_rollback_plan(nodes, rollout)
            return
        components = rollout.components()
        self.say(f"rolling back the farm of {len(nodes)} nodes and {len(components)} other hosts")
        status = self._preflight(nodes, reason="before-farm-rollback")
        self._check_rollback(status)
        rollout.rollback(components)  # the other hosts first: the reverse of the upgrade
        plans: dict[str, RollbackPlan] = {
            n: s.rollback for n, s in status.items() if s.rollback is not None
        }
        if not plans:
            self.say("no node has an upgrade to roll back")
            return
        target = sorted({p.to for p in plans.values()})[0]
        self.say(f"{len(plans)} nodes go back to {target}")
        if self.m.shared:
            for name in sorted(plans, key=lambda n: n == self.me):
                self._move_node(name, nodes[name], target, "/v1/farm/rollback", {})
            return
        self._master_last(
            nodes,
            status,
            sorted(plans),
            lambda n: self._rollback_node(n, nodes[n], target),
            "rolled back",
        )

    def _check_rollback(self, status: dict[str, Hello]) -> None:
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

    def _show_rollback_plan(self, nodes: dict[str, str], rollout: ComponentRollout) -> None:
        seen, _ = inventory(self.m, self.me, {**nodes, self.me: self.m.self_url})
        self.say("plan: roll the farm back (nothing is changed now)")
        self.say("1. the other hosts, one at a time (adapters, portals, mobile services):")
        lines = plan_lines(sorted(seen, key=rollout_key), None)
        for line in lines or ["  none in the inventory"]:
            self.say(line)
        self.say("2. the nodes, one at a time (subordinates first, then the master):")
        for n, url in sorted(nodes.items()):
            h = hello(self.m, self.me, url)
            if h is None:
                self.say(f"  {n:<20}does not answer: the rollback would stop here")
            elif h.rollback is None:
                self.say(f"  {n:<20}{h.role:<12} {h.release}: nothing to roll back")
            else:
                self.say(f"  {n:<20}{h.role:<12} {h.release} -> {h.rollback.to}")

    def _rollback_node(self, name: str, url: str, target: str) -> None:
        def tell() -> None:  # its restored copy may name an older master
            tell_members(self.store, self.m, {name: url}, skip=set())

        self._move_node(name, url, target, "/v1/farm/rollback", {}, on_release=tell)

    def _settle(self, name: str, url: str) -> None:
        """Events this node recorded reach the master before its copy goes back (those that
        do not yet are carried across the restore and relayed after)."""
        deadline = time.monotonic() + self.drain_timeout
        while (said := hello(self.m, self.me, url)) is not None and said.audit_pending:
            if time.monotonic() > deadline:
                self.say(f"[{name}] audit events not yet relayed; they are relayed after")
                return
            time.sleep(0.2)
