"""Policy rules judged by radclient (FreeRADIUS) against a real ``openmfa serve``: a trusted
network's request passes with the password alone, another network's is asked for its code;
the network is the NAS's address or the Calling-Station-Id as the rule says; a code of a method
the rule does not allow is an Access-Reject whose Reply-Message says so; a rule added while the
server runs applies to the next request (compiled once per generation), and each decision a
rule changed is in the audit log under the rule's name."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import OPENMFA, Server, cli, init, oathtool, secret_of, server
from .services import free_udp_port
from .test_radius import SECRET, radclient


@dataclass
class Node:
    dd: Path
    srv: Server
    port: int
    seed: str

    def code(self, offset: int = 0) -> str:
        return oathtool("--totp", "-b", self.seed, "-N", f"{offset:+d} seconds")

    def sign_in(self, password: str, station: str = "") -> tuple[str | None, dict[str, str]]:
        attrs = {"User-Name": "alice", "User-Password": password}
        if station:
            attrs["Calling-Station-Id"] = station
        return radclient(self.port, attrs)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    dd = tmp_path_factory.mktemp("radius-policy") / "node"
    dd.mkdir()
    init(dd)
    cli(dd, "user", "add", "alice")
    seed = secret_of(cli(dd, "method", "add", "alice", "totp", "--no-qr").stdout)
    subprocess.run(
        [OPENMFA, "user", "set-password", "alice", "--password-stdin", "--data-dir", str(dd)],
        input="alice-local-pw\n",
        text=True,
        check=True,
    )
    cli(dd, "radius", "client", "add", "gw", "--address", "127.0.0.1/32", "--secret", SECRET,
        "--primary", "local", "--push", "off")  # fmt: skip
    port = free_udp_port()
    with server(dd, radius=f"127.0.0.1:{port}") as srv:
        yield Node(dd, srv, port, seed)


def rule(node: Node, *args: str) -> None:
    cli(node.dd, "policy", "add", *args)


def test_a_trusted_network_passes_with_the_password_alone(node: Node) -> None:
    # By the Calling-Station-Id the gateway reports.
    rule(node, "office", "--channel", "radius", "--client", "gw", "--source", "10.0.0.0/8",
         "--source-from", "calling-station", "--second-factor", "skip")  # fmt: skip
    kind, _ = node.sign_in("alice-local-pw", station="10.1.2.3")
    assert kind == "Access-Accept"
    kind, attrs = node.sign_in("alice-local-pw", station="192.0.2.5")
    assert kind == "Access-Challenge" and attrs["Reply-Message"] == "Enter your verification code"
    kind, _ = node.sign_in("alice-local-pw", station="00-11-22-33-44-55")  # not an address
    assert kind == "Access-Challenge"
    kind, _ = node.sign_in("alice-local-pw")  # none at all
    assert kind == "Access-Challenge"
    kind, _ = node.sign_in("not-her-password", station="10.1.2.3")
    assert kind == "Access-Reject"  # the password still counts
    cli(node.dd, "policy", "remove", "office")
    # By the NAS's own address (radclient's: 127.0.0.1).
    rule(node, "lan", "--channel", "radius", "--source", "10.0.0.0/8", "--second-factor", "skip")
    kind, _ = node.sign_in("alice-local-pw", station="10.1.2.3")
    assert kind == "Access-Challenge"  # the NAS is not in 10/8; the station is not looked at
    rule(node, "loopback", "--channel", "radius", "--source", "127.0.0.0/8",
         "--second-factor", "skip", "--position", "1")  # fmt: skip
    kind, _ = node.sign_in("alice-local-pw")
    assert kind == "Access-Accept"
    cli(node.dd, "policy", "remove", "loopback")
    cli(node.dd, "policy", "remove", "lan")
    audit = cli(node.dd, "audit", "--user", "alice", "--json").stdout
    assert "second factor skipped by policy rule office" in audit
    assert "second factor skipped by policy rule loopback" in audit


def test_a_method_the_rule_does_not_allow_is_refused_with_a_reply_message(node: Node) -> None:
    rule(node, "push-only", "--channel", "radius", "--client", "gw", "--methods", "push")
    kind, attrs = node.sign_in("alice-local-pw")
    assert kind == "Access-Challenge"
    kind, reply = radclient(
        node.port,
        {"User-Name": "alice", "User-Password": node.code(30), "State": attrs["State"]},
    )
    assert kind == "Access-Reject"
    assert reply["Reply-Message"] == (
        "That method is not allowed for this sign-in; use another of your methods"
    )
    cli(node.dd, "policy", "remove", "push-only")
    kind, attrs = node.sign_in("alice-local-pw")
    kind, _ = radclient(
        node.port,
        {"User-Name": "alice", "User-Password": node.code(), "State": attrs["State"]},
    )
    assert kind == "Access-Accept"  # the rule gone, the next request is decided without it
    audit = cli(node.dd, "audit", "--user", "alice", "--json").stdout
    assert "method totp not allowed by policy rule push-only" in audit
