"""`openmfa backup` as an administrator runs it: real files, real server, real pg_dump."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from openmfa.store.database import DATA_FORMAT

from .helpers import OPENMFA, cli, free_port, init, oathtool, secret_of, server


def backup_ids(dd: Path) -> list[str]:
    return [line.split("\t")[0] for line in cli(dd, "backup", "list").stdout.splitlines()]


def test_create_verify_restore(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "alice")
    seed = secret_of(cli(dd, "method", "add", "alice", "totp", "--no-qr").stdout)
    out = cli(dd, "backup", "create").stdout
    (bid,) = backup_ids(dd)
    assert out.startswith(bid) and "verified" in out
    assert cli(dd, "backup", "verify", bid).stdout.strip() == f"{bid}: good"
    cli(dd, "user", "delete", "alice")
    cli(dd, "user", "add", "mallory")
    restored = cli(dd, "backup", "restore", bid, "--yes").stdout
    assert "restored" in restored and "before-restore" in restored
    users = cli(dd, "user", "list").stdout
    assert "alice" in users and "mallory" not in users
    cli(dd, "verify", "alice", oathtool("--totp", "-b", seed))  # the seed opens again
    # The state before the restore was kept, and holds mallory.
    before = next(b for b in backup_ids(dd) if b.endswith("before-restore"))
    manifest = json.loads((dd / "backups" / before / "manifest.json").read_text())
    assert manifest["rows"]["users"] == 1 and manifest["data_format"] == DATA_FORMAT


def test_damaged_backup_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "user", "add", "alice")
    cli(dd, "backup", "create")
    (bid,) = backup_ids(dd)
    copy = dd / "backups" / bid / "openmfa.db"
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    err = cli(dd, "backup", "verify", bid, expect=1).stderr
    assert "openmfa.db does not match its checksum" in err
    cli(dd, "user", "add", "bob")
    before = (dd / "openmfa.db").read_bytes()
    err = cli(dd, "backup", "restore", bid, "--yes", expect=1).stderr
    assert "is not good, nothing was changed" in err
    assert (dd / "openmfa.db").read_bytes() == before


def test_manifest_row_counts_are_checked(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cli(dd, "backup", "create")
    (bid,) = backup_ids(dd)
    manifest = dd / "backups" / bid / "manifest.json"
    data = json.loads(manifest.read_text())
    data["rows"]["users"] = 5
    manifest.write_text(json.dumps(data))
    assert (
        "table users has 0 rows, manifest says 5"
        in cli(dd, "backup", "verify", bid, expect=1).stderr
    )


def test_restore_stops_the_serving_node_and_starts_it_again(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    token = init(dd)
    port = free_port()
    cfg = dd / "server.toml"
    cfg.write_text(
        cfg.read_text()
        .replace("127.0.0.1:8480", f"127.0.0.1:{port}")
        .replace('listen = "127.0.0.1:1812"', 'listen = ""')
    )
    cli(dd, "user", "add", "alice")
    cli(dd, "backup", "create")  # the configuration is in the backup too
    (bid,) = backup_ids(dd)
    first = subprocess.Popen(
        [OPENMFA, "serve", "--data-dir", str(dd)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        # A second server on the same data directory is refused.
        assert (
            "another openmfa process"
            in cli(
                dd, "serve", "--listen", "127.0.0.1:1", "--radius-listen", "off", expect=1
            ).stderr
        )
        cli(dd, "user", "add", "mallory")
        out = cli(dd, "backup", "restore", bid, "--yes").stdout
        assert f"stopping the node (pid {first.pid})" in out and "started the node" in out
        assert first.wait(timeout=30) == 0  # stopped gracefully, before the restore
        users = httpx.get(url + "/v1/users", headers={"Authorization": f"Bearer {token}"}).json()
        assert [u["name"] for u in users["users"]] == ["alice"]
    finally:
        if first.poll() is None:
            first.terminate()
            first.wait()
        lock = dd / "openmfa.lock"
        pid = lock.read_text().strip() if lock.exists() else ""
        if pid.isdigit() and Path(f"/proc/{pid}").exists():  # the node the restore restarted
            os.kill(int(pid), signal.SIGTERM)


def _wait_ready(url: str) -> None:
    for _ in range(150):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never became ready")


def test_backup_while_authenticating(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    token = init(dd)
    with (
        server(dd) as srv,
        httpx.Client(
            base_url=srv.url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        ) as c,
    ):
        for i in range(20):
            c.post("/v1/users", json={"name": f"u{i}"})
        stop = threading.Event()
        done = [0]

        def load() -> None:
            with httpx.Client(
                base_url=srv.url, timeout=10, headers={"Authorization": f"Bearer {token}"}
            ) as lc:
                while not stop.is_set() and done[0] < 5000:
                    lc.post("/v1/authenticate", json={"user": f"u{done[0] % 20}", "code": "1"})
                    done[0] += 1

        th = threading.Thread(target=load)
        th.start()
        try:
            for _ in range(3):
                assert "verified" in cli(dd, "backup", "create").stdout
        finally:
            stop.set()
            th.join()
        assert done[0] > 0
    for bid in backup_ids(dd):
        cli(dd, "backup", "verify", bid)


def test_retention(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    cfg = dd / "server.toml"
    cfg.write_text(cfg.read_text().replace("keep = 10", "keep = 2"))
    for reason in ("one", "two", "three"):
        cli(dd, "backup", "create", "--reason", reason)
    ids = backup_ids(dd)
    assert len(ids) == 2 and ids[-1].endswith("three") and not any(i.endswith("one") for i in ids)


def test_migrate_takes_a_verified_backup(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    assert "(verified)" in cli(dd, "migrate").stdout
    assert any(b.endswith("before-migrate") for b in backup_ids(dd))


@pytest.mark.postgres
def test_postgresql_backup_and_restore(pg_node_dir: Path) -> None:
    dd = pg_node_dir
    init(dd)
    cli(dd, "user", "add", "pg-alice")
    cli(dd, "backup", "create")
    (bid,) = backup_ids(dd)
    assert (dd / "backups" / bid / "openmfa.pgdump").exists()
    cli(dd, "backup", "verify", bid)
    cli(dd, "user", "delete", "pg-alice")
    cli(dd, "backup", "restore", bid, "--yes")
    assert "pg-alice" in cli(dd, "user", "list").stdout
