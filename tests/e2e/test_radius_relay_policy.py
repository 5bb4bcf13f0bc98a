"""Policy rules on MS-CHAPv2 (relayed to a real FreeRADIUS upstream; radclient as the VPN, the
reference authenticator as the phone; the set-up of ``test_radius_mschap``): a trusted
network's ``skip`` accepts once the upstream accepted, with no push; a rule whose methods
exclude push, or that wants a numbered push (such a VPN shows no number), is an Access-Reject
with no push, audited with the rule's name; under ``--pin required`` (no PIN can travel here)
``--pin-elsewhere refuse`` (the default) refuses and ``--pin-elsewhere push`` lets the push
decide."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import cli
from .test_radius_mschap import USERS, Site, mschap_request, radclient, radclient_start, result

# This module's own FreeRADIUS upstream and node (a module-scoped fixture):
from .test_radius_mschap import site as site

pytestmark = pytest.mark.e2e


def details(site: Site, user: str) -> list[str]:
    out = cli(site.dd, "audit", "--user", user, "--json").stdout
    return [row["detail"] for row in map(json.loads, out.splitlines())]


def test_a_trusted_network_skips_the_push(site: Site, tmp_path: Path) -> None:
    phone = site.phone("alice", tmp_path)
    cli(site.dd, "policy", "add", "trusted", "--channel", "radius", "--client", "vpn",
        "--source", "198.51.100.0/24", "--source-from", "calling-station",
        "--second-factor", "skip")  # fmt: skip
    try:
        _, attrs = mschap_request("alice", USERS["alice"])  # from 198.51.100.9
        kind, reply, out = radclient(site, attrs)
        assert kind == "Access-Accept", out + site.node.log.read_text()[-3000:]
        assert "MS-CHAP2-Success" in reply and "MS-MPPE-Send-Key" in reply
        assert phone.pending(wait=2) == []  # no push
        _, attrs = mschap_request("alice", "not-her-password")
        assert radclient(site, attrs)[0] == "Access-Reject"  # the password still counts
        _, attrs = mschap_request("alice", USERS["alice"])
        attrs["Calling-Station-Id"] = "192.0.2.7"  # another network: the push
        vpn = radclient_start(site.port, attrs)
        (request,) = phone.pending(wait=15)
        phone.run("approve", str(request["id"]))
        assert result(vpn)[0] == "Access-Accept"
    finally:
        cli(site.dd, "policy", "remove", "trusted")
    assert "second factor skipped by policy rule trusted" in details(site, "alice")


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--methods", "totp"], "method push not allowed by policy rule strict"),
        (["--numbered-push"], "method push not allowed by policy rule strict"),
        (
            ["--pin", "required"],
            "a PIN cannot travel here; refused by policy rule strict (pin-elsewhere)",
        ),
    ],
)
def test_a_rule_that_allows_no_such_push_refuses(
    site: Site, tmp_path: Path, options: list[str], said: str
) -> None:
    phone = site.phone("bob", tmp_path)
    cli(site.dd, "policy", "add", "strict", "--channel", "radius", "--client", "vpn", *options)
    try:
        _, attrs = mschap_request("bob", USERS["bob"], ident=9)
        kind, reply, out = radclient(site, attrs)
        assert kind == "Access-Reject" and "MS-CHAP-Error" in reply, out
        assert "MS-CHAP2-Success" not in reply and "MS-MPPE-Send-Key" not in reply
        assert phone.pending(wait=2) == []  # no push was sent
    finally:
        cli(site.dd, "policy", "remove", "strict")
    assert said in details(site, "bob")


def test_pin_elsewhere_push_lets_the_push_decide(site: Site, tmp_path: Path) -> None:
    phone = site.phone("lola", tmp_path)
    cli(site.dd, "policy", "add", "pins", "--channel", "radius", "--pin", "required",
        "--pin-elsewhere", "push")  # fmt: skip
    try:
        listed = cli(site.dd, "policy", "list").stdout
        assert "pin=required pin-elsewhere=push" in listed
        _, attrs = mschap_request("lola", USERS["lola"])
        vpn = radclient_start(site.port, attrs)
        (request,) = phone.pending(wait=15)
        phone.run("approve", str(request["id"]))
        kind, reply, out = result(vpn)
        assert kind == "Access-Accept" and "MS-CHAP2-Success" in reply, out
    finally:
        cli(site.dd, "policy", "remove", "pins")
