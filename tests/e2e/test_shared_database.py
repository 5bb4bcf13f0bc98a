"""Shared-database mode: several nodes on one PostgreSQL database, no change feed.

Every node reads and writes the shared database; a code accepted on one node is a replay on
every other (conditional state updates), and a change made through any node is seen by all
(their caches follow the shared change records).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from .helpers import cli, init, oathtool, server

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
pytestmark = pytest.mark.postgres


def test_two_nodes_share_one_postgresql_database(pg_node_dir: Path, tmp_path: Path) -> None:
    one = pg_node_dir
    admin = init(one)
    two = tmp_path / "two"
    two.mkdir()
    shutil.copy2(one / "openmfa.key", two / "openmfa.key")  # one farm, one data key
    (two / "server.toml").write_text((one / "server.toml").read_text())
    for dd, name in ((one, "node-1"), (two, "node-2")):
        cfg = dd / "server.toml"
        cfg.write_text(cfg.read_text() + f'\n[server]\nnode_name = "{name}"\n')
    h = {"authorization": f"Bearer {admin}"}
    with server(one) as s1, server(two) as s2:
        cli(one, "user", "add", "alice")
        cli(one, "method", "add", "alice", "totp", "--secret", SEED, "--no-qr")
        code = oathtool("--totp", "-b", SEED)
        r = httpx.post(s2.url + "/v1/authenticate", json={"user": "alice", "code": code}, headers=h)
        assert r.json()["accepted"] is True, r.text
        r = httpx.post(s1.url + "/v1/authenticate", json={"user": "alice", "code": code}, headers=h)
        assert r.json()["reason"] == "replay", r.text
        cli(two, "user", "add", "bob")
        assert httpx.get(s1.url + "/v1/users/bob", headers=h).status_code == 200
        # A shared-database farm: each node adds itself; status asks every node.
        made = cli(one, "farm", "init", "--url", s1.url).stdout
        assert "made shared-database farm" in made
        joined = cli(two, "farm", "init", "--url", s2.url).stdout
        assert "joined shared-database farm" in joined and "(2 nodes)" in joined
        status = json.loads(cli(two, "farm", "status", "--json").stdout)
        nodes = {n["name"]: (n["role"], n["health"]) for n in status["nodes"]}
        assert nodes == {"node-1": ("shared", "ok"), "node-2": ("shared", "ok")}
        cli(two, "user", "add", "carol")  # every node still writes
        refused = cli(one, "farm", "promote", "node-2", expect=1)
        assert "no master" in refused.stderr
        refused = cli(two, "farm", "join", s1.url, "--token", "omfa-join-x", expect=1)
        assert "share one database" in refused.stderr
