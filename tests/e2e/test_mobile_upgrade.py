"""A mobile-service-only host and a portal-only host (DMZ hosts: no data file, no database
credentials) upgraded by hand, one after the other, from an offline bundle of the next release
while their node stays on the release before — the newer host against the older node, the
direction the whole deployment's upgrade never takes (tests/e2e/test_deployment_upgrade.py has
the older hosts against the newer nodes, under load) — while an activated phone keeps approving
pushes and a person keeps signing in to the portal; then both hosts are rolled back. The
portal's prefix and custom theme stay as the admin made them. Release A is the newest one
releases.toml records (built from its commit), B this tree built as the next version.

The portal host is an adapter host too (forward-auth's adapter.toml): on B, it registers OpenMFA
as LemonLDAP::NG's second factor against the node on A, joins the node's inventory, and
LemonLDAP::NG's sign-ins are checked by the node on A; back on A, the host reads B's
registration and the sign-ins go on (the adapter host newer than the node, and back)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from openmfa.sdk.client import SdkClient

from .farm_scenario import make_bundle
from .helpers import OPENMFA, Phone, free_port, healthy, oathtool, wait_for
from .services import Idp, free_udp_port, lemonldap
from .test_upgrade import NEW, OLD, recorded_release

A = OLD
B = NEW
PREFIX = "/mfa-phone"
ADAPTER_PORTALS = 'portals = ["10.0.0.5:8500"]  # the two portal hosts behind nginx'
PORTAL_PREFIX = "/self-service"
PASSWORD = "pia's long password"
SEEDS = {"dwho": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ", "rtyler": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}
"""LemonLDAP::NG's demo users (the password is the name), with a TOTP method on the node."""


def run(*cmd: str, expect: int = 0) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=600)
    assert proc.returncode == expect, (cmd, proc.stdout, proc.stderr)
    return proc.stdout


def lock_pid(lock: Path) -> int | None:
    text = lock.read_text().strip() if lock.exists() else ""
    return int(text) if text.isdigit() and Path(f"/proc/{text}").exists() else None


@dataclass
class Deployment:
    node_root: Path
    node_record: Path
    node_url: str
    admin: str
    mobile_root: Path
    mobile_record: Path
    mobile_url: str
    bundles: Path
    portal_root: Path
    portal_record: Path
    portal_url: str
    backup_codes: list[str]
    idp: Idp | None = None
    """LemonLDAP::NG, whose second factor the portal host (its adapter.toml) registers."""

    @property
    def adapter_toml(self) -> Path:
        return self.portal_root / "var" / "adapter.toml"

    def portal_host(self, *args: str) -> str:
        """``openmfa ARGS`` of the portal host's current release."""
        return run(str(self.portal_root / "current" / "venv" / "bin" / "openmfa"), *args)

    def llng_sign_in(self, user: str) -> None:
        """``user`` signs in at LemonLDAP::NG: asked for OpenMFA after the password, a wrong
        code refused, the right one (checked by the node) gives the session."""
        assert self.idp is not None
        idp = self.idp
        wait_for(lambda: idp.sign_in(user, None)[0] == "/openmfa2fcheck", "OpenMFA asked", 30)
        action, cookie, _ = idp.sign_in(user, "000000")
        assert action == "/openmfa2fcheck" and not cookie.startswith("lemonldap="), cookie
        _, cookie, error = idp.sign_in(user, oathtool("--totp", "-b", SEEDS[user]))
        assert cookie.startswith("lemonldap="), (cookie, error)

    def node_cli(self, *args: str) -> str:
        openmfa = str(self.node_root / "current" / "venv" / "bin" / "openmfa")
        return run(openmfa, *args, "--data-dir", str(self.node_root / "var"))

    def approve(self, phone: Phone) -> None:
        """A push for pia, seen and approved on the phone through the mobile host, and the
        waiting sign-in accepted."""
        wait_for(lambda: healthy(self.mobile_url), "the mobile service reaches the node")
        with SdkClient(self.node_url, self.admin) as sdk:
            d = sdk.authenticate("pia", push=True)
            assert d.pending is not None, d
            seen = phone.pending(wait=10)
            assert [r["id"] for r in seen] == [d.pending.id]
            phone.run("approve", d.pending.id, "--number", d.pending.number)
            assert sdk.push_outcome(d.pending.id, wait=10).accepted

    def offline_code(self, phone: Phone) -> None:
        with SdkClient(self.node_url, self.admin) as sdk:
            assert sdk.authenticate("pia", phone.run("code").stdout.strip()).accepted

    def portal_sign_in(self) -> None:
        """pia signs in to the portal (password, then a backup code) and sees her methods, on
        the Acme theme."""
        wait_for(lambda: healthy(self.portal_url), "the portal reaches the node")
        with httpx.Client(base_url=self.portal_url, timeout=30) as h:
            page = h.get("/sign-in")
            assert "Acme sign-in" in page.text  # the custom theme
            form = {"csrf": csrf(page), "user": "pia", "password": PASSWORD}
            r = h.post("/sign-in", data=form)
            assert r.status_code == 303 and r.headers["location"].endswith("/second-factor")
            page = h.get("/second-factor")
            r = h.post("/second-factor", data={"csrf": csrf(page), "code": self.backup_codes.pop()})
            assert r.status_code == 303 and r.headers["location"].endswith("/methods"), r.text
            assert "pia" in h.get("/methods").text

    def release_of(self, lock: Path) -> str:
        """The release the running service's interpreter (holding ``lock``) belongs to."""
        pid = lock_pid(lock)
        assert pid is not None
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        found = re.search(rb"/releases/([^/]+)/venv/", b" ".join(argv))
        assert found, argv
        return found.group(1).decode()

    def mobile_release(self) -> str:
        return self.release_of(self.mobile_root / "var" / "mobile.lock")

    def portal_release(self) -> str:
        return self.release_of(self.portal_root / "var" / "portal.lock")


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def configure(path: Path, values: dict[str, str]) -> None:
    """Set settings of a shipped NAME.toml as an administrator would (each line edited)."""
    text = path.read_text()
    for key, value in values.items():
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
        assert n == 1, key
    path.write_text(text)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp("deployment")
    wheels = base / "wheels"
    wheels.mkdir()
    wheel_a = recorded_release(wheels)
    (base / "bundle-b").write_text(str(make_bundle(wheels, B)))
    node_root, node_record = base / "node" / "root", base / "node" / "install.toml"
    out = run(
        OPENMFA, "install", "--root", str(node_root), "--from-wheel", str(wheel_a),
        "--record", str(node_record),
    )  # fmt: skip
    admin = re.search(r"(omfa_\S+)", out).group(1)  # type: ignore[union-attr]
    port, mobile_port = free_port(), free_port()
    mobile_url = f"http://127.0.0.1:{mobile_port}{PREFIX}"
    var = node_root / "var"
    cfg = var / "server.toml"
    text = cfg.read_text().replace('listen = "127.0.0.1:8480"', f'listen = "127.0.0.1:{port}"')
    text = text.replace('listen = "127.0.0.1:1812"', f'listen = "127.0.0.1:{free_udp_port()}"')
    cfg.write_text(text + f'\n[mobile]\npublic_url = "{mobile_url}"\nmin_gap_seconds = 0.0\n')
    portal_port = free_port()
    d = Deployment(
        node_root, node_record, f"http://127.0.0.1:{port}", admin,
        base / "dmz" / "root", base / "dmz" / "install.toml", mobile_url, base,
        base / "web" / "root", base / "web" / "install.toml",
        f"http://127.0.0.1:{portal_port}{PORTAL_PREFIX}", [],
    )  # fmt: skip
    d.node_cli("user", "add", "pia")
    subprocess.run(
        [str(node_root / "current" / "venv" / "bin" / "openmfa"), "user", "set-password", "pia",
         "--password-stdin", "--data-dir", str(var)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    codes = d.node_cli("method", "add", "pia", "backup-codes")
    d.backup_codes = re.findall(r"\b\d{5}-\d{5}\b", codes)
    assert len(d.backup_codes) == 10, codes
    for user, seed in SEEDS.items():
        d.node_cli("user", "add", user)
        d.node_cli("method", "add", user, "totp", "--secret", seed, "--no-qr")
    adapter_key = d.node_cli("apikey", "create", "web-idp", "--scope", "adapter").split()[-1]
    mobile_key = d.node_cli("apikey", "create", "dmz-mobile", "--scope", "mobile").split()[-1]
    portal_key = d.node_cli("apikey", "create", "web-portal", "--scope", "portal").split()[-1]
    node_log = (base / "node.log").open("w")
    node = subprocess.Popen(
        [str(node_root / "current" / "venv" / "bin" / "openmfa"), "serve", "--data-dir", str(var)],
        stdout=node_log,
        stderr=subprocess.STDOUT,
    )
    mobile: subprocess.Popen[bytes] | None = None
    portal: subprocess.Popen[bytes] | None = None
    mobile_log = (base / "mobile-first.log").open("w")
    portal_log = (base / "portal-first.log").open("w")
    services = contextlib.ExitStack()
    try:
        d.idp = services.enter_context(lemonldap())
        # The mobile host is installed from an offline bundle made on the node.
        run(OPENMFA, "bundle", "create", str(base / "a.tar.gz"), "--record", str(node_record))
        out = run(
            OPENMFA, "install", "--root", str(d.mobile_root), "--from-bundle",
            str(base / "a.tar.gz"), "--components", "mobile", "--record", str(d.mobile_record),
        )  # fmt: skip
        dmz = d.mobile_root / "var"
        assert "mobile serve --config" in out and not list(dmz.glob("openmfa.db*")), out
        assert not (dmz / "openmfa.key").exists()  # no data, no keys to it on the DMZ host
        (dmz / "mobile.key").write_text(mobile_key + "\n")
        (dmz / "mobile.key").chmod(0o600)
        mcfg = dmz / "mobile.toml"
        text = mcfg.read_text()
        for key, value in (
            ("listen", f'"127.0.0.1:{mobile_port}"'),
            ("prefix", f'"{PREFIX}"  # the DMZ proxy publishes this path, ticket 4711'),
            ("nodes", f'["{d.node_url}"]'),
            ("api_key_file", '"mobile.key"'),
        ):
            text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
            assert n == 1, key
        mcfg.write_text(text)
        mobile = subprocess.Popen(
            [str(d.mobile_root / "current" / "venv" / "bin" / "openmfa"), "mobile", "serve",
             "--config", str(mcfg)],
            stdout=mobile_log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(lambda: healthy(mobile_url), "the mobile service reaches the node")
        # The portal host, from the same bundle; a custom theme made from the Default.
        out = run(
            OPENMFA, "install", "--root", str(d.portal_root), "--from-bundle",
            str(base / "a.tar.gz"), "--components", "portal", "--record", str(d.portal_record),
        )  # fmt: skip
        web = d.portal_root / "var"
        assert "portal serve --config" in out and not list(web.glob("openmfa.db*")), out
        (web / "portal.key").write_text(portal_key + "\n")
        (web / "portal.key").chmod(0o600)
        themes = d.portal_root / "themes"
        shutil.copytree(themes / "Default", themes / "Acme")
        sign_in = themes / "Acme" / "templates" / "sign_in.html"
        sign_in.write_text(
            sign_in.read_text().replace("{% block main %}", "{% block main %}\n<p>Acme sign-in</p>")
        )
        configure(
            web / "portal.toml",
            {
                "listen": f'"127.0.0.1:{portal_port}"',
                "prefix": f'"{PORTAL_PREFIX}"  # published by the web proxy',
                "nodes": f'["{d.node_url}"]',
                "api_key_file": '"portal.key"',
                "theme": '"Acme"',
            },
        )
        # The portal host is also the forward-auth adapter's host: its adapter.toml.
        adapter_toml = subprocess.run(
            [str(d.portal_root / "current" / "venv" / "bin" / "openmfa"), "adapter",
             "default-config"], capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        (web / "adapter.toml").write_text(
            adapter_toml.replace('portals = ["127.0.0.1:8500"]', ADAPTER_PORTALS)
        )
        (web / "adapter.key").write_text(adapter_key + "\n")
        (web / "adapter.key").chmod(0o600)
        configure(
            web / "adapter.toml",
            {
                "node_url": f'"{d.node_url}"',
                "api_key_file": '"adapter.key"',
                "ini": f'"{d.idp.folder}/lemonldap-ng.ini"',
            },
        )
        portal = subprocess.Popen(
            [str(d.portal_root / "current" / "venv" / "bin" / "openmfa"), "portal", "serve",
             "--config", str(web / "portal.toml")],
            stdout=portal_log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        yield d
    finally:
        for lock in (
            d.mobile_root / "var" / "mobile.lock",
            d.portal_root / "var" / "portal.lock",
            var / "openmfa.lock",
        ):
            pid = lock_pid(lock)  # what an upgrade (re)started on the test's behalf
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
        for proc in (mobile, portal, node):
            if proc is not None:
                if proc.poll() is None:
                    proc.terminate()
                proc.wait(timeout=30)
        node_log.close()
        mobile_log.close()
        portal_log.close()
        services.close()


def test_newer_mobile_and_portal_hosts_work_with_the_older_node_and_roll_back(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    code = json.loads(d.node_cli("device", "activate", "pia", "--json"))
    assert code["url"] == d.mobile_url
    phone = Phone(tmp_path / "pia-phone.json")
    assert "activated device" in phone.run("activate", code["url"], code["code"]).stdout
    d.approve(phone)
    assert d.mobile_release() == A
    d.portal_sign_in()
    assert d.portal_release() == A

    # 1. The mobile host, from an offline bundle of B; the node stays on A. The phone
    # activated on A approves through the mobile host of B against the node of A.
    bundle_b = (d.bundles / "bundle-b").read_text()
    mobile_before = (d.mobile_root / "var" / "mobile.toml").read_text()
    out = run(
        OPENMFA, "upgrade", "--yes", "--from-bundle", bundle_b, "--record", str(d.mobile_record)
    )
    assert "no data file on this host" in out, out
    assert f"mobile service answering at {d.mobile_url} and reaching its nodes" in out, out
    merged = (d.mobile_root / "var" / "mobile.toml").read_text()
    assert f'prefix = "{PREFIX}"  # the DMZ proxy publishes this path, ticket 4711' in merged
    assert f'nodes = ["{d.node_url}"]' in merged and 'api_key_file = "mobile.key"' in merged
    assert d.mobile_release() == B
    assert httpx.get(d.node_url + "/version", timeout=5).json()["release"] == A
    d.approve(phone)
    d.offline_code(phone)

    # 2. The portal host, from the same bundle: prefix and theme kept, people still sign in
    # (the portal of B against the node of A).
    acme = (d.portal_root / "themes" / "Acme" / "templates" / "sign_in.html").read_text()
    before = (d.portal_root / "var" / "portal.toml").read_text()
    out = run(
        OPENMFA, "upgrade", "--yes", "--from-bundle", bundle_b, "--record", str(d.portal_record)
    )
    assert f"User Portal answering at {d.portal_url} and reaching its nodes" in out, out
    assert "kept custom theme Acme untouched" in out, out
    merged = (d.portal_root / "var" / "portal.toml").read_text()
    assert f'prefix = "{PORTAL_PREFIX}"  # published by the web proxy' in merged
    assert 'theme = "Acme"' in merged and 'api_key_file = "portal.key"' in merged
    assert (d.portal_root / "themes" / "Acme" / "templates" / "sign_in.html").read_text() == acme
    assert ADAPTER_PORTALS in (d.portal_root / "var" / "adapter.toml").read_text()
    assert "adapter.toml merged (your settings kept)" in out, out
    assert d.portal_release() == B
    d.portal_sign_in()

    # 2b. The same host as an adapter host on B against the node on A: it registers OpenMFA as
    # LemonLDAP::NG's second factor (its preflight asks the node of A), reports to the node's
    # inventory with B's client, and LemonLDAP::NG's sign-ins are checked by the node of A.
    conf = str(d.adapter_toml)
    out = d.portal_host("adapter", "register", "lemonldap", "--config", conf)
    assert "second factor required: yes" in out, out
    out = d.portal_host(
        "farm", "join-component", "--kind", "adapter", "--config", conf, "--name", "web-idp"
    )
    assert "web-idp (adapter) is in the farm's inventory" in out, out
    d.llng_sign_in("dwho")

    # 3. The mobile host goes back: A again, its mobile.toml as it was, the phone still works.
    d.approve(phone)
    out = run(OPENMFA, "rollback", "--yes", "--record", str(d.mobile_record))
    assert "mobile.toml put back as it was" in out, out
    assert (d.mobile_root / "var" / "mobile.toml").read_text() == mobile_before
    assert d.mobile_release() == A
    d.approve(phone)
    assert not (d.mobile_root / "upgrade-journal.json").exists()

    # 4. The portal host goes back too.
    out = run(OPENMFA, "rollback", "--yes", "--record", str(d.portal_record))
    assert "portal.toml put back as it was" in out and "adapter.toml put back" in out, out
    assert (d.portal_root / "var" / "portal.toml").read_text() == before
    assert d.portal_release() == A
    d.portal_sign_in()
    # B's registration, read by A's tool; LemonLDAP::NG still asks the node for every sign-in.
    out = d.portal_host("adapter", "status", "lemonldap", "--config", conf)
    assert "openmfa: registered" in out, out
    d.llng_sign_in("rtyler")
