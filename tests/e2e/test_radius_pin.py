"""PIN mode judged by radclient (FreeRADIUS) against a real ``openmfa serve``: under a rule with
``--pin required`` the PIN and the code in one User-Password are accepted; the code alone is
refused, and so is a wrong PIN, counted toward the lock (the rule's threshold locks even the
right PIN and code out); a person with no PIN gets a Reply-Message saying so; after the
password (``--primary local``) the challenge is answered with PIN and code. ``openmfa user
show`` says whether a PIN is set."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import OPENMFA, Server, cli, init, oathtool, secret_of, server, wait_for
from .services import free_udp_port
from .test_radius import SECRET, radclient


@dataclass
class Node:
    dd: Path
    srv: Server
    port: int
    seeds: dict[str, str]

    def code(self, user: str, offset: int = 0) -> str:
        return oathtool("--totp", "-b", self.seeds[user], "-N", f"{offset:+d} seconds")

    def send(self, user: str, password: str) -> tuple[str | None, dict[str, str]]:
        return radclient(self.port, {"User-Name": user, "User-Password": password})


def set_pin(dd: Path, user: str, pin: str) -> None:
    subprocess.run(
        [OPENMFA, "user", "pin", "set", user, "--pin-stdin", "--data-dir", str(dd)],
        input=pin + "\n",
        text=True,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    dd = tmp_path_factory.mktemp("radius-pin") / "node"
    dd.mkdir()
    init(dd)
    seeds = {}
    for user in ("alice", "bob", "carol"):
        cli(dd, "user", "add", user)
        seeds[user] = secret_of(cli(dd, "method", "add", user, "totp", "--no-qr").stdout)
    set_pin(dd, "alice", "4711")
    set_pin(dd, "bob", "258036")
    cli(dd, "radius", "client", "add", "gw", "--address", "127.0.0.1/32", "--secret", SECRET,
        "--primary", "none", "--push", "off")  # fmt: skip
    cli(dd, "policy", "add", "pins", "--channel", "radius", "--pin", "required",
        "--lockout-threshold", "3")  # fmt: skip
    port = free_udp_port()
    with server(dd, radius=f"127.0.0.1:{port}") as srv:
        yield Node(dd, srv, port, seeds)


def test_pin_and_code_accepted_the_code_alone_refused(node: Node) -> None:
    assert "PIN:          set" in cli(node.dd, "user", "show", "alice").stdout
    assert "PIN:          not set" in cli(node.dd, "user", "show", "carol").stdout
    kind, _ = node.send("alice", node.code("alice", 30))  # the code alone
    assert kind == "Access-Reject"
    kind, _ = node.send("alice", "4711" + node.code("alice"))
    assert kind == "Access-Accept"
    kind, _ = node.send("alice", "4711 " + node.code("alice", 30))  # a space is no matter
    assert kind == "Access-Accept"
    kind, reply = node.send("carol", "4711" + node.code("carol"))
    assert kind == "Access-Reject"
    assert reply["Reply-Message"] == (
        "This sign-in needs a PIN and you have none; ask your administrator to set one"
    )
    audit = cli(node.dd, "audit", "--user", "carol", "--json").stdout
    assert "no PIN set; policy rule pins requires one" in audit


def test_wrong_pins_count_toward_the_lock(node: Node) -> None:
    for typed in ("000000" + node.code("bob"), node.code("bob"), "258037" + node.code("bob")):
        kind, _ = node.send("bob", typed)
        assert kind == "Access-Reject"
    kind, reply = node.send("bob", "258036" + node.code("bob"))  # right, but locked now
    assert kind == "Access-Reject"
    assert reply["Reply-Message"] == "Too many failed attempts; try again later"
    rows = [
        json.loads(line)
        for line in cli(node.dd, "audit", "--user", "bob", "--json").stdout.splitlines()
    ]
    refused = [r for r in rows if r["action"] == "authenticate" and r["reason"] == "wrong_pin"]
    assert len(refused) == 3
    assert all(r["detail"].startswith("wrong PIN (policy rule pins)") for r in refused)
    assert [r["detail"] for r in rows if r["action"] == "lockout"] == [
        "wrong PIN (policy rule pins); lockout threshold 3 of policy rule pins"
    ]
    shown = cli(node.dd, "user", "show", "bob").stdout
    assert "locked" in shown


def test_after_the_password_the_challenge_takes_pin_and_code(node: Node) -> None:
    cli(node.dd, "user", "pin", "clear", "carol")  # no error for none
    subprocess.run(
        [OPENMFA, "user", "set-password", "carol", "--password-stdin", "--data-dir",
         str(node.dd)],
        input="carol-local-pw\n", text=True, check=True,
    )  # fmt: skip
    set_pin(node.dd, "carol", "13579")
    cli(node.dd, "radius", "client", "remove", "gw")
    cli(node.dd, "radius", "client", "add", "gw", "--address", "127.0.0.1/32", "--secret",
        SECRET, "--primary", "local", "--push", "off")  # fmt: skip
    kind, attrs = node.send("carol", "carol-local-pw")
    assert kind == "Access-Challenge"
    kind, _ = radclient(
        node.port,
        {"User-Name": "carol", "User-Password": node.code("carol"), "State": attrs["State"]},
    )
    assert kind == "Access-Reject"  # the code alone
    kind, attrs = node.send("carol", "carol-local-pw")
    kind, _ = radclient(
        node.port,
        {
            "User-Name": "carol",
            "User-Password": "13579" + node.code("carol", 30),
            "State": attrs["State"],
        },
    )
    assert kind == "Access-Accept"


def test_a_combined_client_takes_password_pin_and_code_in_one_field(node: Node) -> None:
    """``--combined``: the password, then the PIN (split off by its length), then the code; the
    password and code alone is a wrong PIN."""
    cli(node.dd, "user", "add", "dora")
    node.seeds["dora"] = secret_of(cli(node.dd, "method", "add", "dora", "totp", "--no-qr").stdout)
    subprocess.run(
        [OPENMFA, "user", "set-password", "dora", "--password-stdin", "--data-dir",
         str(node.dd)],
        input="dora-pw-2468\n", text=True, check=True,
    )  # fmt: skip
    set_pin(node.dd, "dora", "8642")
    cli(node.dd, "radius", "client", "add", "gw-combined", "--address", "127.0.0.2/32",
        "--secret", SECRET, "--primary", "local", "--combined", "yes", "--push", "off")  # fmt: skip

    def send(password: str, user: str = "dora") -> tuple[str | None, dict[str, str]]:
        attrs = {"User-Name": user, "User-Password": password}
        return radclient(node.port, {**attrs, "Packet-Src-IP-Address": "127.0.0.2"})

    # (the node reads its RADIUS clients again within a second; until then it drops these)
    wait_for(lambda: send("x123456", user="nobody")[0] == "Access-Reject", "the new client")
    kind, reply = send("dora-pw-2468" + node.code("dora", 30))  # no PIN
    assert kind == "Access-Reject", reply
    kind, reply = send("dora-pw-2468" + "8642" + node.code("dora"))
    assert kind == "Access-Accept", reply
    said = cli(node.dd, "audit", "--user", "dora", "--json").stdout
    assert "wrong PIN (policy rule pins)" in said
