"""RADIUS caching judged by radclient (FreeRADIUS) against a real ``openmfa serve`` whose RADIUS
client checks the password itself (``--primary local``) and challenges for the code: a VPN's
re-authentication from the same Calling-Station-Id within the window passes with the password
alone, at most ``--cache-uses`` times; another Calling-Station-Id is challenged, a wrong password
refused; after the window, after ``openmfa user disable`` (and enable) or a password change it is
challenged again. Each cached acceptance is in the audit log under the rule's name.

The window is minutes long; the test does not wait for it: it moves the stored success back in
the data file (what the node's clock would have done), as other tests drive stored times."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import OPENMFA, Server, cli, init, oathtool, secret_of, server
from .services import free_udp_port
from .test_radius import SECRET, radclient

STATION = "00-11-22-33-44-55"
PASSWORD = "local-pw-123"


@dataclass
class Node:
    dd: Path
    srv: Server
    port: int
    seeds: dict[str, str]

    def ask(
        self, user: str, password: str = PASSWORD, station: str = STATION
    ) -> tuple[str | None, dict[str, str]]:
        return radclient(
            self.port,
            {"User-Name": user, "User-Password": password, "Calling-Station-Id": station},
        )

    def full(self, user: str) -> None:
        """The password, then the code the challenge asks for: a full success."""
        kind, attrs = self.ask(user)
        assert kind == "Access-Challenge", (kind, attrs)
        kind, _ = radclient(
            self.port,
            {
                "User-Name": user,
                "User-Password": oathtool("--totp", "-b", self.seeds[user]),
                "State": attrs["State"],
                "Calling-Station-Id": STATION,
            },
        )
        assert kind == "Access-Accept"


def set_password(dd: Path, user: str, password: str) -> None:
    subprocess.run(
        [OPENMFA, "user", "set-password", user, "--password-stdin", "--data-dir", str(dd)],
        input=password + "\n",
        text=True,
        check=True,
    )


USERS = ("alice", "bob", "carol", "dave")
"""One person per test: each full success takes a TOTP step of its own person's."""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    dd = tmp_path_factory.mktemp("radius-cache") / "node"
    dd.mkdir()
    init(dd)
    seeds = {}
    for user in USERS:
        cli(dd, "user", "add", user)
        seeds[user] = secret_of(cli(dd, "method", "add", user, "totp", "--no-qr").stdout)
        set_password(dd, user, PASSWORD)
    cli(dd, "radius", "client", "add", "vpn", "--address", "127.0.0.1/32", "--secret", SECRET,
        "--primary", "local", "--push", "off")  # fmt: skip
    out = cli(dd, "policy", "add", "vpn-cache", "--channel", "radius", "--client", "vpn",
              "--remember-minutes", "10", "--cache-uses", "2").stdout  # fmt: skip
    assert "remember-minutes=10 cache-uses=2" in out
    port = free_udp_port()
    with server(dd, radius=f"127.0.0.1:{port}") as srv:
        yield Node(dd, srv, port, seeds)


def audit(node: Node, user: str) -> str:
    return cli(node.dd, "audit", "--user", user, "--json").stdout


def test_a_cached_re_authentication_passes_without_a_code_at_most_m_times(node: Node) -> None:
    node.full("alice")
    assert node.ask("alice")[0] == "Access-Accept"  # the password alone
    assert node.ask("alice", station="66-77-88-99-aa-bb")[0] == "Access-Challenge"
    assert node.ask("alice", password="not-her-password")[0] == "Access-Reject"
    kind, _ = radclient(node.port, {"User-Name": "alice", "User-Password": PASSWORD})
    assert kind == "Access-Challenge"  # no Calling-Station-Id: nothing is cached for it
    assert node.ask("alice")[0] == "Access-Accept"  # the second use
    assert node.ask("alice")[0] == "Access-Challenge"  # M = 2 used up
    said = audit(node, "alice")
    assert "second factor cached by policy rule vpn-cache (use 1 of 2)" in said
    assert "second factor cached by policy rule vpn-cache (use 2 of 2)" in said


def test_after_the_window_the_code_is_asked_again(node: Node) -> None:
    node.full("bob")
    assert node.ask("bob")[0] == "Access-Accept"
    with sqlite3.connect(node.dd / "openmfa.db", timeout=10) as db:  # 10 minutes and 1 s ago
        moved = db.execute(
            "UPDATE radius_cache SET at = at - 601 WHERE user_id = "
            "(SELECT id FROM users WHERE name = 'bob')"
        ).rowcount
    assert moved == 1
    assert node.ask("bob")[0] == "Access-Challenge"


def test_after_openmfa_user_disable_it_does_not_pass(node: Node) -> None:
    node.full("carol")
    assert node.ask("carol")[0] == "Access-Accept"
    cli(node.dd, "user", "disable", "carol")
    assert node.ask("carol")[0] == "Access-Reject"
    cli(node.dd, "user", "enable", "carol")
    assert node.ask("carol")[0] == "Access-Challenge"  # the disable ended the cached success


def test_after_a_password_change_it_does_not_pass(node: Node) -> None:
    node.full("dave")
    assert node.ask("dave")[0] == "Access-Accept"
    set_password(node.dd, "dave", "another-pw-456")
    assert node.ask("dave", password="another-pw-456")[0] == "Access-Challenge"


def test_on_a_farm_the_master_counts_the_uses_of_every_node(tmp_path: Path) -> None:
    """A full success on the subordinate (its own data file), the one use (M = 1) on the
    master, and the next request on the subordinate challenged: the master kept the count."""
    a, b = tmp_path / "a", tmp_path / "b"
    init(a)
    cfg = a / "server.toml"
    cfg.write_text(cfg.read_text().replace('node_name = ""', 'node_name = "node-a"'))
    cli(a, "user", "add", "erin")
    seed = secret_of(cli(a, "method", "add", "erin", "totp", "--no-qr").stdout)
    set_password(a, "erin", PASSWORD)
    cli(a, "radius", "client", "add", "vpn", "--address", "127.0.0.1/32", "--secret", SECRET,
        "--primary", "local", "--push", "off")  # fmt: skip
    cli(a, "policy", "add", "vpn-once", "--channel", "radius", "--client", "vpn",
        "--remember-minutes", "10", "--cache-uses", "1")  # fmt: skip
    pa, pb = free_udp_port(), free_udp_port()
    with server(a, radius=f"127.0.0.1:{pa}") as master:
        out = cli(a, "farm", "init", "--url", master.url).stdout
        token = re.search(r"(omfa-join-\S+)", out)
        assert token, out
        b.mkdir()
        (b / "server.toml").write_text(cfg.read_text().replace("node-a", "node-b"))
        cli(b, "farm", "join", master.url, "--token", token.group(1))
        with server(b, radius=f"127.0.0.1:{pb}") as sub:
            on_a = Node(a, master, pa, {"erin": seed})
            on_b = Node(b, sub, pb, {"erin": seed})
            on_b.full("erin")
            assert on_a.ask("erin")[0] == "Access-Accept"  # the master kept b's success
            assert on_b.ask("erin")[0] == "Access-Challenge"  # M = 1, used on the master
    said = audit(Node(a, master, pa, {}), "erin")
    assert "second factor cached by policy rule vpn-once (use 1 of 1)" in said
