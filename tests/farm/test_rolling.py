"""The move every node goes through in ``farm upgrade`` and ``farm rollback`` (drain, act, back),
and the two commands driving it on a real store (a real farm membership, real backups, a real
bundle folder).

The other nodes are played in-process (``Nodes``): a real node would need a running server and
its farm agent restarting it. The load balancer is a recording one (the real ones are HAProxy,
exercised in tests/e2e/test_rolling_balancer.py, and "none", which asks each node's /readyz).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from openmfa.errors import PeerError, RollingUpgradeFailed
from openmfa.farm import membership
from openmfa.farm.balancer import ServerState
from openmfa.farm.join import make_farm
from openmfa.farm.move import Act, NodeMove, Pacing
from openmfa.farm.rollback import FarmRollback, check_rollback
from openmfa.farm.rolling import FarmUpgrade
from openmfa.farm.wire import Hello, RollbackPlan
from openmfa.radius.server import ClientTable
from openmfa.store.changes import Change, ChangeWriter
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config

FAST = Pacing(node_timeout=2.0, drain_timeout=1.0, min_up=1, up_timeout=1.0)
MASTER_URL, SUB_URL = "http://127.0.0.1:9/node-a", "http://127.0.0.1:9/node-b"


class Balancer:
    """A load balancer that keeps its servers' state in memory and records what it was told."""

    def __init__(self, names: list[str], log: list[str]) -> None:
        self.state = dict.fromkeys(names, "UP")
        self.log = log

    def drain(self, node: str) -> None:
        self.log.append(f"drain {node}")
        self.state[node] = "DRAIN"

    def ready(self, node: str) -> None:
        self.log.append(f"ready {node}")
        self.state[node] = "UP"

    def in_flight(self, node: str) -> int | None:
        return 0

    def servers(self) -> dict[str, ServerState] | None:
        return {n: ServerState(s, 1 if s == "UP" else 0) for n, s in self.state.items()}


class Nodes:
    """The farm's nodes as a move reaches them: each says its release and position; an act
    (``/v1/farm/upgrade``, ``/v1/farm/rollback``) puts it on ``moves_to`` unless ``refuse``."""

    def __init__(self, hellos: dict[str, Hello], log: list[str], moves_to: str) -> None:
        self.hellos = hellos
        self.log = log
        self.moves_to = moves_to
        self.refuse = ""
        self.down: set[str] = set()
        """URLs that no longer answer."""
        self.acted_down = False
        """An act leaves the node not answering (it never comes back)."""

    def hello(self, url: str) -> Hello | None:
        return None if url in self.down else self.hellos[url]

    def ready(self, url: str) -> bool:
        return url not in self.down

    def post(self, url: str, path: str, body: dict[str, Any]) -> httpx.Response:
        name = self.hellos[url].name
        self.log.append(f"post {name} {path} {json.dumps(body, sort_keys=True)}")
        if path == "/v1/farm/drain":
            return httpx.Response(200, json={"radius": None})
        if path == "/v1/farm/finalize":
            return httpx.Response(200, json={"format": 7})
        if self.refuse:
            return httpx.Response(409, json={"code": "conflict", "message": self.refuse})
        if self.acted_down:
            self.down.add(url)
        self.hellos[url].release = self.moves_to
        return httpx.Response(200, json={"pid": 1, "log": f"farm-{path.rsplit('/', 1)[-1]}.log"})


def hello(name: str, url: str, role: str, release: str, **kw: Any) -> Hello:
    return Hello(
        name=name, role=role, epoch=1, master_url=MASTER_URL, url=url, position=5,
        release=release, reads=[1, 9], **kw,
    )  # fmt: skip


def a_move(nodes: Nodes, lb: Balancer, said: list[str]) -> NodeMove:
    return NodeMove(
        nodes,
        lb,
        {"node-a": MASTER_URL, "node-b": SUB_URL},
        said.append,
        shared=False,
        pacing=FAST,
        radius_clients=lambda: ClientTable([]),
    )


@pytest.fixture
def pair() -> tuple[Nodes, Balancer, list[str]]:
    log: list[str] = []
    hellos = {
        MASTER_URL: hello("node-a", MASTER_URL, membership.MASTER, "1.1"),
        SUB_URL: hello("node-b", SUB_URL, membership.SUBORDINATE, "1.0"),
    }
    return Nodes(hellos, log, "1.1"), Balancer(["node-a", "node-b"], log), log


def test_a_move_drains_then_acts_then_brings_the_node_back(
    pair: tuple[Nodes, Balancer, list[str]],
) -> None:
    nodes, lb, log = pair
    said: list[str] = []
    steps: list[str] = []
    act = Act(
        target="1.1",
        path="/v1/farm/upgrade",
        body={"bundle": "/srv/b"},
        doing="upgrading in place",
        carry_radius=True,
        settle=lambda name, url: log.append(f"settle {name}"),
        on_release=lambda name, url: steps.append(f"released {name}"),
    )
    a_move(nodes, lb, said)("node-b", SUB_URL, act)
    assert log == [
        "drain node-b",
        'post node-b /v1/farm/drain {"carry": true, "on": true}',
        "settle node-b",
        'post node-b /v1/farm/upgrade {"bundle": "/srv/b"}',
        'post node-b /v1/farm/drain {"carry": false, "on": false}',
        "ready node-b",
    ]
    assert steps == ["released node-b"]  # once, though it was asked after each poll
    assert said == [
        "[node-b] out of the load balancer",
        "[node-b] upgrading in place",
        "[node-b] runs 1.1 and has every change",
        "[node-b] back in the load balancer",
        "[node-b] serves again: the load balancer reports it UP and taking traffic, "
        "it answers /readyz",
    ]
    assert lb.state == {"node-a": "UP", "node-b": "UP"}


def test_a_refused_act_puts_the_node_back_and_stops(
    pair: tuple[Nodes, Balancer, list[str]],
) -> None:
    nodes, lb, log = pair
    nodes.refuse = "no backup of the data"
    said: list[str] = []
    act = Act(target="1.1", path="/v1/farm/upgrade", body={}, doing="upgrading in place",
              carry_radius=True)  # fmt: skip
    with pytest.raises(PeerError, match="node-b could not start its upgrade: no backup"):
        a_move(nodes, lb, said)("node-b", SUB_URL, act)
    assert log[0] == "drain node-b" and log[-1] == "ready node-b"  # it serves: back in
    assert lb.state["node-b"] == "UP"
    assert "[node-b] back in the load balancer" not in said  # the move stopped there


def test_a_node_that_never_comes_back_stays_out_and_stops_the_command(
    pair: tuple[Nodes, Balancer, list[str]],
) -> None:
    nodes, lb, log = pair
    nodes.acted_down = True
    act = Act(target="1.1", path="/v1/farm/rollback", body={}, doing="rolling back",
              carry_radius=False)  # fmt: skip
    with pytest.raises(RollingUpgradeFailed, match=r"node-b did not come back on 1\.1 within 2 s"):
        a_move(nodes, lb, [])("node-b", SUB_URL, act)
    assert lb.state["node-b"] == "DRAIN"  # it does not answer: no traffic is sent to it
    assert "ready node-b" not in log


def test_no_node_goes_out_unless_another_serves(pair: tuple[Nodes, Balancer, list[str]]) -> None:
    nodes, lb, log = pair
    lb.state["node-a"] = "DOWN"
    act = Act(target="1.1", path="/v1/farm/upgrade", body={}, doing="upgrading in place",
              carry_radius=True)  # fmt: skip
    with pytest.raises(RollingUpgradeFailed, match="node-b was not taken out: 0 other servers"):
        a_move(nodes, lb, [])("node-b", SUB_URL, act)
    assert "drain node-b" not in log  # never taken out (only ever told it is ready: it serves)
    assert not any("/v1/farm/upgrade" in line for line in log)


@pytest.fixture
def master(tmp_path: Path) -> Iterator[Store]:
    """A real node (SQLite: a replicating farm) that is the master of a farm of two."""
    store = Store.create(DataDir(tmp_path / "node-a"), make_config())
    try:
        make_farm(store, MASTER_URL)
        ChangeWriter(store).commit([Change("farm.member", {"name": "node-b", "url": SUB_URL})])
        yield store
    finally:
        store.close()


def farm_nodes(store: Store, master: str, sub: str, **sub_kw: Any) -> dict[str, Hello]:
    return {
        MASTER_URL: hello(store.node_name, MASTER_URL, membership.MASTER, master),
        SUB_URL: hello("node-b", SUB_URL, membership.SUBORDINATE, sub, **sub_kw),
    }


def test_the_upgrade_moves_each_node_not_yet_on_the_bundle_release(
    master: Store, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text(json.dumps({"version": "1.1", "files": {}}))
    log: list[str] = []
    said: list[str] = []
    nodes = Nodes(farm_nodes(master, "1.1", "1.0"), log, "1.1")
    lb = Balancer([master.node_name, "node-b"], log)
    upgrade = FarmUpgrade(master, bundle, lb, said.append, pacing=FAST)
    upgrade.steps.peers = nodes
    upgrade.run()
    assert log == [
        "drain node-b",
        'post node-b /v1/farm/drain {"carry": true, "on": true}',
        f'post node-b /v1/farm/upgrade {{"bundle": "{bundle.resolve()}"}}',
        'post node-b /v1/farm/drain {"carry": false, "on": false}',
        "ready node-b",
        f"post {master.node_name} /v1/farm/finalize {{}}",
    ]
    assert said[0] == f"rolling upgrade of 2 nodes and 0 other hosts to 1.1 from {bundle}"
    assert any(s.endswith("of the master taken and verified") for s in said), said
    assert "[node-b] upgrading in place" in said
    assert said[-1] == "[finalize] the farm's data format is 7"


def test_the_rollback_moves_each_node_back_through_the_same_move(master: Store) -> None:
    log: list[str] = []
    said: list[str] = []
    plan = RollbackPlan(to="1.0", format=2)
    nodes = Nodes(farm_nodes(master, "1.0", "1.1", rollback=plan, farm_format=2), log, "1.0")
    lb = Balancer([master.node_name, "node-b"], log)
    rollback = FarmRollback(master, lb, said.append, pacing=FAST)
    rollback.steps.peers = nodes
    rollback.run()
    assert log == [
        "drain node-b",
        'post node-b /v1/farm/drain {"carry": false, "on": true}',  # 1.0 may not take them
        "post node-b /v1/farm/rollback {}",
        'post node-b /v1/farm/drain {"carry": false, "on": false}',
        "ready node-b",
    ]
    assert "1 nodes go back to 1.0" in said
    assert "[node-b] rolling back" in said
    assert said[-1].startswith("[node-b] serves again")


def test_a_rollback_is_refused_before_anything_changes_when_the_nodes_cannot_all_go_back() -> None:
    def at(release: str, to: str | None, fmt: int = 2) -> Hello:
        plan = RollbackPlan(to=to, format=2) if to else None
        return hello("n", MASTER_URL, membership.SUBORDINATE, release, rollback=plan,
                     farm_format=fmt)  # fmt: skip

    check_rollback({"a": at("1.1", "1.0"), "b": at("1.0", None)})  # b is back already
    with pytest.raises(RollingUpgradeFailed, match=r"different releases \(0.9, 1.0\)"):
        check_rollback({"a": at("1.1", "1.0"), "b": at("1.0", "0.9")})
    with pytest.raises(RollingUpgradeFailed, match="data format moved to 3"):
        check_rollback({"a": at("1.1", "1.0", fmt=3), "b": at("1.0", None, fmt=3)})
    with pytest.raises(RollingUpgradeFailed, match=r"b runs neither 1\.0 nor"):
        check_rollback({"a": at("1.1", "1.0"), "b": at("1.2", None)})
