"""The whole deployment upgraded by one command while people sign in on every channel, then
rolled back by one command before finalize (tests/e2e/deployment_scenario.py): three nodes,
two portal hosts and two mobile-service hosts behind HAProxy, and an adapter host
(LemonLDAP::NG, and nginx in front of a site asking the portal hosts: forward-auth); SDK,
RADIUS (a code alone, and password-then-code challenges), push, portal (forms, and Chromium),
forward-auth (curl) and LemonLDAP::NG sign-ins throughout, and the Authenticator web app in a
phone's Chromium approving pushes from when the mobile hosts serve it (release A does not: from
their upgrade to B) through the rollback, when its service worker's shell carries on. Pass: no
sign-in failed on any channel, none passed without its second factor (every accepted one was
asked for a code or a push), no audit event lost, every user and setting intact, each host's
own config values kept.

The OpenID Connect channels (tests/e2e/oidc_channels.py: an application's code flow, Entra ID's
external authentication method) sign no one in here, honestly: release A has no provider, and
it is never set up — the nodes' ``[oidc] issuer`` would stop A's nodes (an unknown section),
and the provider needs data format 8, which only ``farm finalize`` brings, after which there is
no rollback. What they check is that every answer, on A, on B held and on A again, is a clear
404 at the discovery document (never a 5xx, never an authorization). Issuing through an upgrade
and a rollback is shown between two builds of this tree (tests/e2e/test_deployment_oidc.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .deployment_scenario import A, B, Deployment, install, timed, upgrade_under_load
from .test_farm_upgrade import assert_audited


@pytest.fixture
def deployment(tmp_path: Path, wheelhouse: Path) -> Iterator[Deployment]:
    d = install(tmp_path)
    try:
        yield d
    finally:
        d.stop()


def test_the_whole_deployment_upgrades_and_rolls_back_while_everyone_signs_in(
    deployment: Deployment,
) -> None:
    d = deployment
    seen: dict[str, object] = {}

    def check_then_roll_back(lb: list[str]) -> str:
        # Upgraded and held: every host on B, the hosts' own settings kept, finalize not run.
        seen["upgraded"] = {c.name: c.release() for c in d.components}
        seen["nodes_upgraded"] = {n.name: n.release() for n in d.nodes}
        seen["configs"] = {c.name: c.config.read_text() for c in d.components}
        master = next(
            n for n in d.nodes if json.loads(n.cli("farm", "status", "--json"))["master"] == n.url
        )
        master.cli("user", "add", "late", "--email", "late@example.org")  # made on B
        plan = master.openmfa("farm", "rollback", *lb, "--dry-run", "--data-dir", str(master.var))
        seen["plan"] = plan
        out = timed(master, "farm", "rollback", *lb, "--data-dir", str(master.var))
        assert d.idp is not None
        seen["llng"] = d.idp.llng("save")  # LemonLDAP::NG's configuration after it all
        return out

    o = upgrade_under_load(d, then=check_then_roll_back)
    app = o.load.app
    assert app is not None
    rps = o.load.oidc
    assert rps is not None
    print(o.output, o.then_output, o.report(), app.summary(), rps.summary(), sep="\n")
    firsts = [f for c in o.load.channels.values() for f in c.failed[:6]]  # each channel's
    assert o.load.failures() == [], "\n".join([*firsts, *o.balancer[-30:]])
    for name, channel in o.load.channels.items():
        if name in ("oidc", "eam"):  # no provider on A, none set up on B held: refused clearly
            assert channel.tried == 0 and not rps.signed_in, rps.summary()
            for where in (A, B):
                assert rps.refused[f"{name} on portal {where}"] >= 2, rps.summary()
            continue
        assert channel.accepted >= 3, (name, o.report())
    assert seen["nodes_upgraded"] == {n.name: B for n in d.nodes}
    assert seen["upgraded"] == {c.name: B for c in d.components}, o.output
    configs = seen["configs"]
    assert isinstance(configs, dict)
    for c in d.portals:
        assert 'public_url = "http://auth.example.localhost:' in configs[c.name]
        assert (
            "attempts_per_minute = 600  # every test visitor comes from 127.0.0.1"
            in configs[c.name]
        )
        assert f'name = "{c.name}"' in configs[c.name]
        assert (
            'session_key_file = "session.key"  # the same on every portal host' in configs[c.name]
        )
    for c in d.mobiles:
        assert (
            "# the SDK behind HAProxy" in configs[c.name]
            and f'name = "{c.name}"' in configs[c.name]
        )
    for c in d.adapters:
        assert "canary_seconds = 3" in configs[c.name]
        assert 'idps = ["lemonldap", "nginx"]' in configs[c.name]
        assert "# the SDK behind HAProxy" in configs[c.name]
        # Its registration moved to the new release and back, each time with no gap: beside
        # the old one for the canary, then everyone, then in its place.
        for log in ("farm-upgrade.log", "farm-rollback.log"):
            text = (c.root / log).read_text()
            assert 'canary ($uid eq "dwho")' in text and "openmfa_next removed" in text, text
            assert "as backup; nginx reloaded" in text and "now; nginx reloaded" in text, text
    llng = json.loads(str(seen["llng"]))
    assert "openmfa" in llng["sfExtra"] and "openmfa_next" not in llng["sfExtra"]
    assert llng["sfRequired"] in (1, "1")
    # The order: nodes, then mobile hosts, then portal hosts; finalize held.
    out = o.output
    assert (
        out.index("[node-a]") < out.index("[dmz-1]") < out.index("[dmz-2]") < out.index("[web-1]")
    )
    assert out.index("[web-2]") < out.index("[idp-1]")  # the adapter host last
    assert "finalize held" in out and "[finalize]" not in out
    # Rolled back: the reverse order, every host on A again.
    rolled = o.then_output
    assert "the farm is rolled back" in rolled, rolled
    assert rolled.index("[idp-1]") < rolled.index("[web-2]")
    assert rolled.index("[web-2]") < rolled.index("[web-1]") < rolled.index("[dmz-2]")
    assert rolled.index("[dmz-1]") < rolled.index("[node-")
    assert "web-1" in str(seen["plan"]) and f"{B} -> {A}" in str(seen["plan"])
    assert {c.name: c.release() for c in d.components} == {c.name: A for c in d.components}
    assert {n.name: n.release() for n in d.nodes} == {n.name: A for n in d.nodes}
    for n in d.nodes:
        users = {u["name"] for u in json.loads(n.cli("user", "list", "--json"))}
        assert users >= {*d.seeds, "pia", "pam", "late"}, n.name  # nothing made on B was lost
    master = next(
        n for n in d.nodes if json.loads(n.cli("farm", "status", "--json"))["master"] == n.url
    )
    assert_audited(master, o.load.base.sdk_request_ids)
    status = json.loads(master.cli("farm", "status", "--json"))
    assert {c["name"]: c["release"] for c in status["components"]} == {
        c.name: A for c in d.components
    }
    # The app's phone, activated on B, kept approving with the mobile hosts rolled back to A
    # (which serves no app: the service worker's shell, also when the page was opened again).
    assert app.activated and app.reloaded and app.errors == [], app.summary()
    on_a = [n for where, n in app.approved.items() if where.startswith(f"mobile {A}, ")]
    assert sum(on_a) >= 2 and sum(app.approved.values()) >= 5, app.summary()
