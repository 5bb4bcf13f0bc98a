"""A host brought back from a backup on an empty data directory keeps what its keys made: a
node, a portal with forward-auth and a mobile service with WebPush (its VAPID key outside the
data directory) run; a person signs in to the portal and a phone is activated; ``openmfa backup
create``; the host is gone (its data directory and the VAPID key); ``openmfa backup restore``
from the backup's folder on a new, empty data directory; the three start again there — and
the old portal session cookie, the old forward-auth cookie and the phone all still work. Real
processes; the phone is the reference authenticator, the codes oathtool's."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from openmfa.sdk.client import SdkClient

from .helpers import (
    OPENMFA,
    Phone,
    Server,
    cli,
    free_port,
    init,
    oathtool,
    server,
    start_service,
    stop,
    wait_for,
)

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PASSWORD = "a long portal password"
SITE = "http://app.example.com/reports"


@dataclass(frozen=True)
class Ports:
    node: int
    portal: int
    mobile: int

    @property
    def portal_url(self) -> str:
        return f"http://127.0.0.1:{self.portal}/portal"

    @property
    def mobile_url(self) -> str:
        return f"http://127.0.0.1:{self.mobile}/mobile"


def _private(path: Path, value: str) -> None:
    path.write_text(value + "\n")
    path.chmod(0o600)


def _prepare(dd: Path, ports: Ports, vapid: Path) -> str:
    """The first host: ada (password and TOTP), the services' configurations and keys. The
    administrator's API key."""
    admin = init(dd)
    cli(dd, "user", "add", "ada", "--email", "ada@example.com")
    subprocess.run(
        [OPENMFA, "user", "set-password", "ada", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    cli(dd, "method", "add", "ada", "totp", "--secret", SEED, "--no-qr")
    for scope in ("portal", "mobile"):
        _private(
            dd / f"{scope}.key",
            cli(dd, "apikey", "create", scope, "--scope", scope).stdout.split()[-1],
        )
    for name in ("forward-auth.key", "session.key"):
        _private(dd / name, subprocess.run(
            ["openssl", "rand", "-hex", "32"], capture_output=True, text=True, check=True
        ).stdout.strip())  # fmt: skip
    (dd / "portal.toml").write_text(
        f'[portal]\nlisten = "127.0.0.1:{ports.portal}"\n'
        f'nodes = ["http://127.0.0.1:{ports.node}"]\napi_key_file = "portal.key"\n'
        'session_key_file = "session.key"\nattempts_per_minute = 1000\n'
        '[forward_auth]\nenabled = true\ncookie_domain = "example.com"\n'
        f'public_url = "http://auth.example.com:{ports.portal}/portal"\n'
        "revocation_poll_seconds = 0.5\n"
    )
    vapid.parent.mkdir(parents=True)
    cli(dd, "mobile", "vapid-key", str(vapid))
    (dd / "mobile.toml").write_text(
        f'[mobile]\nlisten = "127.0.0.1:{ports.mobile}"\n'
        f'nodes = ["http://127.0.0.1:{ports.node}"]\napi_key_file = "mobile.key"\n'
        f'long_poll_seconds = 10\nwebpush_vapid_key_file = "{vapid}"\n'
    )
    with (dd / "server.toml").open("a") as f:
        f.write(f'\n[mobile]\npublic_url = "{ports.mobile_url}"\nmin_gap_seconds = 0.0\n')
    return admin


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def _sign_in(portal: str) -> tuple[dict[str, str], str]:
    """ada signs in to the portal on her way to the site: her browser's portal cookies and
    the forward-auth cookie's value."""
    with httpx.Client(base_url=portal, headers={"Accept-Language": "en"}) as h:
        first = h.get("/sign-in", params={"rd": SITE})
        step = h.post("/sign-in", data={"csrf": _csrf(first), "user": "ada", "password": PASSWORD})
        assert step.status_code == 303, step.text
        page = h.get("/second-factor")
        code = oathtool("--totp", "-b", SEED)
        done = h.post("/second-factor", data={"csrf": _csrf(page), "code": code})
        assert done.status_code == 303 and done.headers["location"] == SITE, done.text
        fa = [c for c in done.headers.get_list("set-cookie") if c.startswith("openmfa_auth=")]
        assert fa, done.headers
        assert h.get("/methods").status_code == 200  # signed in: the page, no sign-in
        cookies = dict(h.cookies.items())
    assert "openmfa-portal-carry" in cookies, cookies  # the session, sealed with session.key
    return cookies, fa[0].split(";")[0].split("=", 1)[1]


def _forward_auth(portal: str, cookie: str) -> httpx.Response:
    return httpx.get(
        portal + "/auth",
        headers={"Cookie": f"openmfa_auth={cookie}", "X-Original-URL": SITE},
        timeout=10,
    )


def _push_signs_in(node_url: str, admin: str, phone: Phone) -> bool:
    with SdkClient(node_url, admin) as sdk:
        d = sdk.authenticate("ada", push=True)
        assert d.pending is not None, d
        waiting = phone.pending(wait=10)
        assert [r["id"] for r in waiting] == [d.pending.id]
        phone.run("approve", d.pending.id, "--number", d.pending.number)
        return sdk.push_outcome(d.pending.id, wait=10).accepted


def _vapid_public_key(ports: Ports) -> str:
    key = str(httpx.get(ports.mobile_url + "/v1/info", timeout=10).json()["vapid_public_key"])
    assert key
    return key


def _lose(node: Server) -> None:
    """The host is lost (killed: its node would otherwise wait, on SIGTERM, up to 25 s for the
    mobile service's long poll of push events, which outlives the service that asked)."""
    node.proc.kill()
    node.proc.wait(timeout=30)


def _services(dd: Path, ports: Ports) -> list[subprocess.Popen[str]]:
    portal = ["portal", "serve", "--config", str(dd / "portal.toml")]
    mobile = ["mobile", "serve", "--config", str(dd / "mobile.toml")]
    procs = [start_service(portal, ports.portal_url + "/healthz", dd / "portal.log")]
    try:
        procs.append(start_service(mobile, ports.mobile_url + "/v1/info", dd / "mobile.log"))
    except BaseException:
        stop(procs[0])
        raise
    return procs


def test_an_empty_host_restored_from_a_backup_keeps_sessions_cookies_and_devices(
    tmp_path: Path,
) -> None:
    ports = Ports(free_port(), free_port(), free_port())
    first, vapid = tmp_path / "first-host", tmp_path / "etc" / "vapid.pem"
    admin = _prepare(first, ports, vapid)
    secrets_ = [p.read_text().strip() for p in first.glob("*.key")] + [vapid.read_text()]
    phone = Phone(tmp_path / "ada-phone.json")
    with server(first, port=ports.node) as node:
        procs = _services(first, ports)
        try:
            code = json.loads(cli(first, "device", "activate", "ada", "--json").stdout)
            assert code["url"] == ports.mobile_url
            assert "activated device" in phone.run("activate", code["url"], code["code"]).stdout
            cookies, fa_cookie = _sign_in(ports.portal_url)
            wait_for(
                lambda: _forward_auth(ports.portal_url, fa_cookie).status_code == 200,
                "the forward-auth cookie taken on the first host",
                30,
            )
            vapid_public = _vapid_public_key(ports)
            made = cli(first, "backup", "create")
        finally:
            for p in procs:
                stop(p)
            _lose(node)
    said = made.stdout + made.stderr
    assert not any(s in said for s in secrets_)  # names and paths only
    for what in ("the forward-auth key", "the portal's session key", "the portal's API key"):
        assert f"kept {what}" in said, said
    assert (
        f"kept the WebPush VAPID key (mobile.toml [mobile] webpush_vapid_key_file): {vapid}" in said
    )
    backup_id, _, where = made.stdout.splitlines()[0].split("\t")
    # The first host is gone: its backup's folder is all that is left (copied elsewhere).
    carried = tmp_path / "carried" / backup_id
    shutil.copytree(where, carried)
    shutil.rmtree(first)
    vapid.unlink()
    new = tmp_path / "new-host"
    restored = cli(new, "backup", "restore", str(carried), "--yes")
    out = restored.stdout
    assert f"restored {backup_id} into {new} (it held no data before)" in out, out
    for name in ("forward-auth.key", "session.key", "portal.key", "mobile.key"):
        assert f": {new / name}" in out, out
        assert (new / name).stat().st_mode & 0o777 == 0o600
    assert f"{vapid} (outside the data directory)" in out
    assert vapid.stat().st_mode & 0o777 == 0o600
    assert not any(s in out + restored.stderr for s in secrets_)
    with server(new, port=ports.node) as node:
        procs = _services(new, ports)
        try:
            # The portal session of before the backup: still signed in, on a new process
            # (which holds no session in memory: the sealed cookie brings it back).
            with httpx.Client(base_url=ports.portal_url, cookies=cookies) as browser:
                page = browser.get("/methods")
                assert page.status_code == 200, (page.status_code, page.headers)
            stranger = httpx.get(ports.portal_url + "/methods", timeout=10)
            assert stranger.status_code == 303 and "/sign-in" in stranger.headers["location"]
            # The forward-auth cookie: taken (once this host has asked the node what ended).
            wait_for(
                lambda: _forward_auth(ports.portal_url, fa_cookie).status_code == 200,
                "the old forward-auth cookie taken on the restored host",
                30,
            )
            assert _forward_auth(ports.portal_url, fa_cookie).headers["remote-user"] == "ada"
            # The phone: the same WebPush key, and its signed answer is taken.
            assert _vapid_public_key(ports) == vapid_public
            assert _push_signs_in(node.url, admin, phone)
        finally:
            for p in procs:
                stop(p)
            _lose(node)
