"""The README as a newcomer reads it (issue 29): what they type does what the README says.

``--data-dir`` before the command's name too; ``audit --limit N`` the newest N; activation URLs
where the Mobile App Web Service really listens when ``[mobile] public_url`` is not set; a
``serve --listen`` that moves HTTP says where RADIUS stayed."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .helpers import OPENMFA, cli, free_port, init, server, start_service, stop, wait_for
from .services import free_udp_port

pytestmark = pytest.mark.e2e


def _openmfa(*args: str, env_dir: Path) -> subprocess.CompletedProcess[str]:
    """``openmfa ARGS`` with ``$OPENMFA_DATA_DIR`` pointing at ``env_dir``."""
    env = {**os.environ, "OPENMFA_DATA_DIR": str(env_dir)}
    return subprocess.run([OPENMFA, *args], capture_output=True, text=True, env=env, timeout=60)


def test_data_dir_is_taken_before_the_command_and_after_it(tmp_path: Path) -> None:
    dd, other = tmp_path / "node", tmp_path / "other"
    init(dd)
    init(other)
    cli(dd, "user", "add", "bob")
    nowhere = tmp_path / "nowhere"
    # Before the command: it beats $OPENMFA_DATA_DIR, as an option given on the line does.
    unlocked = _openmfa("--data-dir", str(dd), "user", "unlock", "bob", env_dir=nowhere)
    assert unlocked.returncode == 0, unlocked.stderr
    listed = _openmfa("--data-dir", str(dd), "user", "list", env_dir=nowhere)
    assert listed.returncode == 0 and "bob" in listed.stdout, listed.stderr
    audit = _openmfa("--data-dir", str(dd), "audit", env_dir=nowhere)
    assert audit.returncode == 0 and "user.unlock" in audit.stdout, (audit.stdout, audit.stderr)
    # Both: the command's own wins.
    both = _openmfa(
        "--data-dir", str(other), "user", "list", "--data-dir", str(dd), env_dir=nowhere
    )
    assert both.returncode == 0 and "bob" in both.stdout, both.stderr
    both = _openmfa("--data-dir", str(dd), "user", "list", "--data-dir", str(other), env_dir=dd)
    assert both.returncode == 0 and "bob" not in both.stdout, both.stderr
    # A command that has no data directory takes it (and has no use for it).
    shown = _openmfa("--data-dir", str(dd), "mobile", "default-config", env_dir=nowhere)
    assert shown.returncode == 0 and "[mobile]" in shown.stdout, shown.stderr


def test_audit_limit_shows_the_newest_events_oldest_first(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    for i in range(8):
        cli(dd, "user", "add", f"user{i}")
    every = [json.loads(line) for line in cli(dd, "audit", "--json").stdout.splitlines()]
    assert len(every) >= 8
    newest = [
        json.loads(x) for x in cli(dd, "audit", "--json", "--limit", "3").stdout.split("\n")[:-1]
    ]
    assert newest == every[-3:]
    assert [e["user"] for e in newest] == ["user5", "user6", "user7"]
    text = cli(dd, "audit", "--limit", "2").stdout.splitlines()
    assert len(text) == 2 and "user=user6" in text[0] and "user=user7" in text[1]
    mine = cli(dd, "audit", "--user", "user1", "--limit", "1", "--json").stdout
    assert json.loads(mine)["user"] == "user1"


def _activation_url(dd: Path) -> str:
    cli(dd, "user", "add", f"p{time.monotonic_ns()}")
    name = json.loads(cli(dd, "user", "list", "--json").stdout)[-1]["name"]
    return str(json.loads(cli(dd, "device", "activate", name, "--json").stdout)["url"])


def _sdk_activation_url(url: str, token: str, dd: Path) -> str:
    name = f"s{time.monotonic_ns()}"
    cli(dd, "user", "add", name)
    answer = httpx.post(
        f"{url}/v1/users/{name}/devices/activation",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["url"])


def test_activation_urls_name_the_mobile_service_inside_serve_where_it_listens(
    tmp_path: Path,
) -> None:
    dd = tmp_path / "node"
    token = init(dd)
    with (dd / "server.toml").open("a") as f:
        f.write('\n[mobile]\nenabled = true\nprefix = "/phones"\n')
    port = free_port()
    with server(dd, port=port) as node:
        wanted = f"http://127.0.0.1:{port}/phones"
        assert _sdk_activation_url(node.url, token, dd) == wanted
        assert _activation_url(dd) == wanted
        assert httpx.get(wanted + "/v1/info").json()["service"] == "openmfa-mobile"


def test_activation_urls_name_the_mobile_service_of_its_own_where_it_listens(
    tmp_path: Path,
) -> None:
    """A mobile service run from the node's data directory (mobile.toml beside server.toml)
    on a port of its own: activation codes carry that port, not the node's 8480."""
    dd = tmp_path / "node"
    token = init(dd)
    key = cli(dd, "apikey", "create", "mobile", "--scope", "mobile").stdout.strip()
    (dd / "mobile.key").write_text(key + "\n")
    (dd / "mobile.key").chmod(0o600)
    node_port, mobile_port = free_port(), free_port()
    (dd / "mobile.toml").write_text(
        f'[mobile]\nlisten = "127.0.0.1:{mobile_port}"\n'
        f'nodes = ["http://127.0.0.1:{node_port}"]\napi_key_file = "mobile.key"\n'
    )
    wanted = f"http://127.0.0.1:{mobile_port}/mobile"
    assert _activation_url(dd) == wanted  # nothing runs yet: mobile.toml says where
    with server(dd, port=node_port) as node:
        assert _sdk_activation_url(node.url, token, dd) == wanted
        proc = start_service(
            ["mobile", "serve", "--config", str(dd / "mobile.toml")],
            wanted + "/v1/info",
            dd / "mobile.log",
        )
        try:
            assert _activation_url(dd) == wanted
        finally:
            stop(proc)
    # Moved for one run (--listen): where it ran last.
    moved = free_port()
    proc = start_service(
        ["mobile", "serve", "--config", str(dd / "mobile.toml"), "--listen", f"127.0.0.1:{moved}"],
        f"http://127.0.0.1:{moved}/mobile/v1/info",
        dd / "mobile-moved.log",
    )
    try:
        assert _activation_url(dd) == f"http://127.0.0.1:{moved}/mobile"
    finally:
        stop(proc)
    # Set in server.toml: that, always.
    with (dd / "server.toml").open("a") as f:
        f.write('\n[mobile]\npublic_url = "https://mfa.example.org/mobile"\n')
    assert _activation_url(dd) == "https://mfa.example.org/mobile"


def test_without_any_mobile_service_known_the_shipped_one_is_named(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    assert _activation_url(dd) == "http://127.0.0.1:8490/mobile"


def test_serve_listen_elsewhere_says_where_radius_stayed(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    udp = free_udp_port()
    config = dd / "server.toml"
    config.write_text(
        config.read_text().replace('listen = "127.0.0.1:1812"', f'listen = "127.0.0.1:{udp}"')
    )
    port = free_port()
    log = dd / "serve.log"
    env = {**os.environ, "OPENMFA_DATA_DIR": str(dd)}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [OPENMFA, "serve", "--listen", f"127.0.0.2:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for(lambda: "RADIUS listening" in log.read_text(), "the node's RADIUS", 30)
        text = log.read_text()
        assert f"127.0.0.1:{udp}" in text and "--radius-listen" in text, text
    finally:
        stop(proc)
    # Moved with it, or on the same host: nothing to say.
    with log.open("w") as out:
        proc = subprocess.Popen(
            [OPENMFA, "serve", "--listen", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for(lambda: "RADIUS listening" in log.read_text(), "the node's RADIUS", 30)
        assert "--radius-listen" not in log.read_text()
    finally:
        stop(proc)
