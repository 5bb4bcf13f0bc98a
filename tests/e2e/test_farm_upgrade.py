"""The whole farm upgraded, one node at a time, under load, behind a real HAProxy.

Three installed nodes (``openmfa install``, each with its own release environments and install
record) run 0.2.0, the first release with a farm, built from its commit (its data at format 1,
moved to this release's format at finalize). HAProxy balances their SDK ports; a RADIUS client
lists the three RADIUS ports and fails over on a timeout, as gateways do. While both keep
authenticating, ``openmfa farm upgrade`` (run on the master with the previous release) upgrades
every node to this tree's release. Then: no authentication failed, no audit event is missing
on the master, every user and method is on every node, and the format is finalized.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from openmfa.store.formats import DATA_FORMAT
from tests.conftest import pg_database

from .farm_scenario import (
    Node,
    install_nodes,
    make_releases,
    make_shared_releases,
    rolling_upgrade,
    share_database,
)


def assert_audited(master: Node, request_ids: list[str]) -> None:
    """Every authentication the load generator saw answered is in the master's audit log."""
    deadline = time.monotonic() + 60
    while True:
        out = master.cli("audit", "--json", "--limit", "1000000")
        rows = [json.loads(line) for line in out.splitlines()]
        seen = {r["request_id"] for r in rows if r["action"] == "authenticate"}
        missing = [rid for rid in request_ids if rid not in seen]
        if not missing:
            return
        assert time.monotonic() < deadline, f"{len(missing)} audit events missing"
        time.sleep(1)


def data_format_reaches(node: Node, fmt: int, timeout: float = 30.0) -> bool:
    """Whether the node's rows reach data format ``fmt`` (a subordinate moves when it applies
    the finalize record, a replication lag after the master)."""
    deadline = time.monotonic() + timeout
    while httpx.get(f"{node.url}/version").json()["data_format"] != fmt:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


FIRST_FARM = "0.2.0"
"""The first release with a farm: the farm's row of the upgrade matrix starts there
(tests/e2e/test_upgrade_matrix.py has a node on its own from every release). A farm of the
newest release is upgraded under load with every component by the deployment scenario
(tests/e2e/test_deployment_upgrade.py), so this test runs from the first."""


@pytest.fixture(scope="module", params=[FIRST_FARM])
def releases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path
) -> tuple[Path, Path, str]:
    """(a recorded release's wheel, a bundle of this tree as the next release, its version)."""
    return make_releases(tmp_path_factory.mktemp("farm-wheels"), str(request.param))


@pytest.fixture
def farm(releases: tuple[Path, Path, str], tmp_path: Path) -> Iterator[list[Node]]:
    nodes = install_nodes(tmp_path, releases[0])
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def test_rolling_upgrade_under_load_through_haproxy(
    farm: list[Node], releases: tuple[Path, Path, str], tmp_path: Path
) -> None:
    _, bundle, new_version = releases
    b = farm[1]
    o = rolling_upgrade(farm, bundle, tmp_path)
    print(o.output, f"{o.seconds:.0f} s; load: {o.load.ok} accepted, {len(o.load.failed)} failed")
    assert "the farm is upgraded" in o.output and "[finalize]" in o.output, o.output
    assert o.load.failed == [], o.failures()
    assert o.load.ok > 50, o.load.ok
    seeds, load = o.seeds, o.load
    for n in farm:
        assert n.release() == new_version
        users = {u["name"]: u for u in json.loads(n.cli("user", "list", "--json"))}
        assert set(users) >= set(seeds), n.name
        for name in seeds:  # sealed at finalize (format 2) on every node, and intact
            assert users[name]["email"] == f"{name}@example.org", (n.name, users[name])
        assert data_format_reaches(n, DATA_FORMAT), n.name  # as the node replays finalize
    farm_status = json.loads(b.cli("farm", "status", "--json"))
    assert farm_status["format"] == DATA_FORMAT
    status = {n["name"]: n for n in farm_status["nodes"]}
    assert status["node-b"]["role"] == "master"
    assert_audited(b, load.sdk_request_ids)


@pytest.mark.postgres
def test_shared_database_farm_upgrades_the_same_way(
    tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path
) -> None:
    """Two nodes on one PostgreSQL database, behind HAProxy, upgraded one at a time under
    load by the same `openmfa farm upgrade`: no failed authentication, finalized. Then, under
    the same load, `openmfa farm rollback`: each node back on the previous release, and the
    shared database as it is (a user added after the upgrade stays). The nodes run with
    --listen and --radius-listen (server.toml names other ports): each restart by the farm
    agent's upgrade and rollback brings them back on the same ports, or the load would fail."""
    work = tmp_path_factory.mktemp("shared-farm")
    old, bundle, new_version = make_shared_releases(work / "wheels")
    nodes = install_nodes(work, old, ("node-a", "node-b"), overrides=True)
    databases = pg_database()
    url = next(databases)
    try:
        share_database(nodes, url)
        upgraded: list[set[tuple[str, str, str]]] = []

        def add_user_and_roll_back(lb: list[str]) -> str:
            status = json.loads(nodes[0].cli("farm", "status", "--json"))
            upgraded.append({(n["name"], n["role"], n["release"]) for n in status["nodes"]})
            nodes[1].cli("user", "add", "late", "--email", "late@example.org")
            return nodes[0].openmfa("farm", "rollback", *lb, "--data-dir", str(nodes[0].var))

        o = rolling_upgrade(nodes, bundle, work, shared=True, then=add_user_and_roll_back)
        print(
            o.output, f"{o.seconds:.0f} s; load: {o.load.ok} accepted, {len(o.load.failed)} failed"
        )
        assert "[finalize]" in o.output and "RADIUS drained" in o.output, o.output
        back = "serves again: the load balancer reports it UP and taking traffic, it answers "
        back += "/readyz, it answers RADIUS Status-Server"
        assert o.output.count(back) == 4, o.output  # two nodes, upgraded and rolled back
        assert "the farm is rolled back" in o.output, o.output
        assert o.load.failed == [], o.failures()
        assert o.load.ok > 30, o.load.ok
        assert upgraded == [{("node-a", "shared", new_version), ("node-b", "shared", new_version)}]
        old_version = old.name.split("-")[1]
        for n in nodes:
            assert n.release() == old_version  # on the port given with --listen
            serve = json.loads((n.var / "openmfa.serve.json").read_text())
            assert serve["argv"][-4:] == n.listen_options(), serve["argv"]
        users = {u["name"]: u for u in json.loads(nodes[1].cli("user", "list", "--json"))}
        assert set(users) >= {*o.seeds, "late"}
        assert users["late"]["email"] == "late@example.org"
    finally:
        for n in nodes:
            n.stop()
        next(databases, None)
