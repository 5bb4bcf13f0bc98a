"""Shared-database mode: several nodes on one PostgreSQL database, no change feed.

Every node reads and writes the shared database; a code accepted on one node is a replay on
every other (conditional state updates), and a change made through any node is seen by all
(their caches follow the shared change records).
"""

from __future__ import annotations

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
        refused = cli(one, "farm", "init", expect=1)
        assert "share one database" in refused.stderr
