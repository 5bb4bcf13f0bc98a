"""Relying parties keep signing people in through the deployment's upgrade and rollback
(tests/e2e/deployment_scenario.py, lean: two nodes and the two portal hosts behind HAProxy, the
hosts the provider lives on; the whole deployment's other hosts and channels are
tests/e2e/test_deployment_upgrade.py's): an application's code flow and Entra ID's external
authentication method (tests/e2e/oidc_channels.py) through HAProxy's portal backend, beside
the SDK, RADIUS, portal and long-lived portal-session channels and the guard, while ``openmfa
farm upgrade --hold`` moves every node and portal host to the next release and ``openmfa farm
rollback`` moves them back.

The OpenID Connect provider arrived after the newest recorded release (0.3.0 has none, and a
farm serves it only at data format 8, after ``farm finalize``, when no rollback is left), so,
as the shared-database farm's rolling upgrade, this is shown between two builds of this tree:
this tree as the next release (B) upgraded to this tree as the one after it, and back. The
provider is set up from the start (``[oidc] issuer`` the portal through HAProxy; the
application and the stand-in Entra tenant registered, the Entra people mapped). Pass: no
sign-in failed on any channel, an application's and Entra's sign-ins accepted with the portal
hosts on the release after B and again on B after the rollback, the guard never broken (a
wrong code brought no code or ID token, a code redeemed twice was refused), every host back on
B."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .deployment_scenario import (
    LEAN_HOSTS,
    NODE_NAMES,
    B,
    Deployment,
    install,
    timed,
    upgrade_under_load,
)

AFTER = ".".join([*B.split(".")[:2], str(int(B.split(".")[2]) + 1)])
"""This tree as the release after B."""


@pytest.fixture
def deployment(tmp_path: Path, wheelhouse: Path) -> Iterator[Deployment]:
    d = install(tmp_path, NODE_NAMES[:2], versions=(B, AFTER), hosts=LEAN_HOSTS)
    try:
        yield d
    finally:
        d.stop()


def test_relying_parties_keep_signing_people_in_through_the_upgrade_and_the_rollback(
    deployment: Deployment,
) -> None:
    d = deployment
    marks: dict[str, float] = {}

    def roll_back(lb: list[str]) -> str:
        marks["upgraded"] = time.monotonic()
        master = next(
            n for n in d.nodes if json.loads(n.cli("farm", "status", "--json"))["master"] == n.url
        )
        out = timed(master, "farm", "rollback", *lb, "--data-dir", str(master.var))
        marks["rolled back"] = time.monotonic()
        assert d.rps is not None
        deadline = time.monotonic() + 120  # the channels go on under the rolled-back farm
        while not all(_since(d.rps.times, marks["rolled back"], f"{n} on portal {B}") >= 2
                      for n in ("oidc", "eam")):  # fmt: skip
            assert time.monotonic() < deadline, d.rps.summary()
            time.sleep(1)
        return out

    assert d.oidc
    o = upgrade_under_load(d, then=roll_back)
    rps = o.load.oidc
    assert rps is not None
    print(o.output, o.then_output, o.report(), rps.summary(), sep="\n")
    firsts = [f for c in o.load.channels.values() for f in c.failed[:6]]
    assert o.load.failures() == [], "\n".join([*firsts, *o.balancer[-30:]])
    assert not rps.refused, rps.summary()
    assert "the farm is rolled back" in o.then_output, o.then_output
    for name in ("oidc", "eam"):
        assert o.load.channels[name].accepted >= 10, o.report()
        assert rps.signed_in[f"{name} on portal {AFTER}"] >= 2, rps.summary()
        assert _since(rps.times, marks["rolled back"], f"{name} on portal {B}") >= 2
    assert o.load.channels["guard"].accepted >= 10, o.report()
    assert {c.name: c.release() for c in d.components} == {c.name: B for c in d.components}
    assert {n.name: n.release() for n in d.nodes} == {n.name: B for n in d.nodes}


def _since(times: list[tuple[float, str]], start: float, key: str) -> int:
    """How many sign-ins tallied as ``key`` ended after ``start``."""
    return sum(1 for t, k in list(times) if t > start and k == key)
