"""Forward-auth through a real nginx (Debian's, ``auth_request``): a protected site behind it
is reached only after OpenMFA's sign-in (the portal's pages: password, then a code or a push
approved on the phone, or a passkey), and the site sees ``Remote-User``. The sites are
``*.example.localhost``: loopback names a browser treats as a secure context over plain http,
which a passkey needs. nginx, the portal, the node and the site are real processes; the browser
is Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import http.server
import json
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright import sync_api as playwright_api

from openmfa.portal.forward_auth import Cookies, ForwardAuthConfig

from .helpers import (
    OPENMFA,
    VIRTUAL_AUTHENTICATOR,
    Phone,
    cli,
    free_port,
    init,
    oathtool,
    server,
    start_service,
    stop,
    wait_for,
)
from .services import PROTECTED_SITE, nginx, nginx_conf

CHROMIUM = "/usr/bin/chromium"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"
PASSWORD = "correct horse battery"


@dataclass
class Protected:
    url: str
    """The protected site, through nginx (http://app.example.localhost:PORT)."""
    portal: str
    """The portal's public address (http://auth.example.localhost:PORT/portal)."""
    seen: list[str] = field(default_factory=list)
    """Remote-User of every request that reached the site."""
    portals: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    """The portal processes by their HOST:PORT (the first one: the one registered)."""
    folder: Path = Path()
    web: Path = Path()
    node_url: str = ""
    cache: Path = Path()
    """Where nginx's workers (user nobody) keep the cached answers: outside pytest's folders,
    which only root may enter."""
    phone: Phone | None = None
    """ada's phone (the reference authenticator), for push sign-ins."""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_portal(self, port: int) -> str:
        """A portal on ``port`` (sharing the forward-auth key, as an upgrade's new one would)."""
        home = self.folder / f"portal-{port}"  # a host of its own (one portal a folder)
        home.mkdir(exist_ok=True)
        for name in ("portal.key", "forward-auth.key"):
            shutil.copy(self.folder / name, home / name)
        config = home / "portal.toml"
        config.write_text(
            f'[portal]\nlisten = "127.0.0.1:{port}"\nnodes = ["{self.node_url}"]\n'
            'api_key_file = "portal.key"\nattempts_per_minute = 1000\n'
            '[forward_auth]\nenabled = true\ncookie_domain = "example.localhost"\n'
            f'public_url = "{self.portal}"\n'
        )
        argv = ["portal", "serve", "--config", str(config)]
        health = f"http://127.0.0.1:{port}/portal/healthz"
        self.portals[f"127.0.0.1:{port}"] = start_service(argv, health, home / "portal.log")
        return f"127.0.0.1:{port}"

    def adapter(self, *args: str, portals: list[str], expect: int = 0) -> str:
        """``openmfa adapter ... nginx`` with adapter.toml naming ``portals``."""
        conf = self.folder / "adapter.toml"
        nginx = ["nginx", "-p", str(self.web), "-c", str(self.web / "nginx.conf")]
        conf.write_text(
            f'[nginx]\ndir = "{self.web}/snippets"\nportals = {json.dumps(portals)}\n'
            f'nginx = {json.dumps(nginx)}\ncache_dir = "{self.cache}/auth"\n'
        )
        return cli(
            self.folder, "adapter", *args, "nginx", "--config", str(conf), expect=expect
        ).stdout


class Site(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        user = self.headers.get("Remote-User", "")
        self.seen.append(user)
        body = f"<!doctype html><title>App</title><h1>Hello {user}</h1>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Protected]:
    base = tmp_path_factory.mktemp("forward-auth")
    dd = base / "node"
    init(dd)
    cli(dd, "user", "add", "ada", "--email", "ada@example.com", "--display-name", "Ada L")
    subprocess.run(
        [OPENMFA, "user", "set-password", "ada", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    cli(dd, "method", "add", "ada", "totp", "--secret", SEED, "--no-qr")
    key = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    folder = base / "portal"
    folder.mkdir()
    for name, value in (("portal.key", key), ("forward-auth.key", secrets.token_hex(32))):
        (folder / name).write_text(value + "\n")
        (folder / name).chmod(0o600)
    portal_port, nginx_port, node_port = free_port(), free_port(), free_port()
    with (dd / "server.toml").open("a") as f:  # the phone's service, in the node
        # ada's pushes follow each other from test to test sooner than the 2 s a person must
        # wait between two (push_limited: the page then shows no number, and the test waited for
        # one in vain whenever the tests ran fast); that limit has tests of its own (test_push).
        f.write(
            f'\n[mobile]\nenabled = true\npublic_url = "http://127.0.0.1:{node_port}/mobile"\n'
            "min_gap_seconds = 0.0\n"
        )
    seen: list[str] = []
    handler = type("Handler", (Site,), {"seen": seen})
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    public = f"http://auth.example.localhost:{portal_port}/portal"
    web = base / "nginx"
    (web / "snippets").mkdir(parents=True)
    cache = Path(tempfile.mkdtemp(prefix="openmfa-nginx-cache-"))
    cache.chmod(0o755)
    out = Protected(
        f"http://app.example.localhost:{nginx_port}", public, seen, folder=folder, web=web
    )
    out.cache = cache
    try:
        with server(dd, port=node_port) as node:
            out.node_url = node.url
            code = json.loads(cli(dd, "device", "activate", "ada", "--json").stdout)
            out.phone = Phone(base / "phone.json")
            out.phone.run("activate", code["url"], code["code"])
            first = out.start_portal(portal_port)
            sites = PROTECTED_SITE.format(folder=web, port=nginx_port, site=site.server_port)
            nginx_conf(web, sites)
            # Registered with the tool: it writes the files nginx includes, checks them with
            # nginx -t (nginx not yet running: nothing to reload).
            assert "portals " + first in out.adapter("register", portals=[first])
            out.procs.append(nginx(web, sites))
            yield out
    finally:
        for proc in [*reversed(out.procs), *out.portals.values()]:
            stop(proc)
        site.shutdown()
        site.server_close()
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--host-resolver-rules=MAP *.example.localhost 127.0.0.1"],
        )
        try:
            yield b
        finally:
            b.close()


def test_the_site_is_reached_only_after_openmfa_and_sees_the_user(
    protected: Protected, browser: Any
) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(protected.url + "/reports?year=2026")
        # Not signed in: nginx sends the browser to OpenMFA's sign-in, with the way back.
        assert page.url.startswith(protected.portal + "/sign-in?rd=")
        assert protected.seen == []
        page.get_by_label("User name", exact=True).fill("ada")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.get_by_label("Verification code", exact=True).fill(oathtool("--totp", "-b", SEED))
        page.get_by_role("button", name="Verify", exact=True).click()
        page.wait_for_url(protected.url + "/reports?year=2026")
        playwright_api.expect(page.get_by_role("heading")).to_have_text("Hello ada")
        assert protected.seen and set(protected.seen) == {"ada"}  # the page (and its favicon)
        cookie = next(c for c in context.cookies() if c["name"] == "openmfa_auth")
        assert (
            cookie["domain"] in (".example.localhost", "example.localhost") and cookie["httpOnly"]
        )
        # Signed in already: the next site request passes at once (nginx keeps the portal's
        # "yes" a few seconds, by cookie).
        page.goto(protected.url + "/other")
        playwright_api.expect(page.get_by_role("heading")).to_have_text("Hello ada")
        assert any(p.is_file() for p in protected.cache.rglob("*"))
        # A forged or altered cookie is not a sign-in.
        reached = len(protected.seen)
        forged = cookie["value"][:-2] + ("AA" if cookie["value"][-2:] != "AA" else "BB")
        jar = {"openmfa_auth": forged}
        r = httpx.get(protected.url.replace("app.example.localhost", "127.0.0.1") + "/x",
                      headers={"Host": protected.url.split("//")[1]}, cookies=jar)  # fmt: skip
        assert r.status_code == 302 and r.headers["location"].startswith(protected.portal)
        assert len(protected.seen) == reached
    finally:
        context.close()


def sign_in_by_push(page: Any, protected: Protected, path: str) -> None:
    """To ``path`` of the site: sent to the sign-in, the password, a push approved on ada's
    phone with the number shown, and back at ``path`` by itself."""
    assert protected.phone is not None
    page.goto(protected.url + path)
    page.get_by_label("User name", exact=True).fill("ada")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("button", name="Send a push to my phone", exact=True).click()
    number = page.locator(".number").inner_text()
    (request,) = protected.phone.pending(wait=20)
    protected.phone.run("approve", str(request["id"]), "--number", number)
    page.wait_for_url(protected.url + path, timeout=60_000)


def test_a_push_approved_on_the_phone_opens_the_site(protected: Protected, browser: Any) -> None:
    """The sign-in page's push: the number shown, approved on the phone, and the browser is
    back at the site by itself."""
    assert protected.phone is not None
    context = browser.new_context()
    page = context.new_page()
    try:
        sign_in_by_push(page, protected, "/by-push")
        playwright_api.expect(page.get_by_role("heading")).to_have_text("Hello ada")
    finally:
        context.close()


def test_a_passkey_opens_the_site(protected: Protected, browser: Any) -> None:
    """A passkey (Chromium's virtual authenticator, DevTools' WebAuthn domain) added at the
    portal after a push sign-in, then the sign-in to the site with it: no code typed."""
    assert protected.phone is not None
    context = browser.new_context()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_AUTHENTICATOR})
    try:
        sign_in_by_push(page, protected, "/by-passkey")
        # At the portal (signed in there too): add a passkey, then sign out of everything.
        page.goto(protected.portal + "/methods")
        page.get_by_role("button", name="Add a passkey", exact=True).click()
        page.get_by_label("Passkey name", exact=True).fill("Laptop")
        page.get_by_role("button", name="Create the passkey", exact=True).click()
        playwright_api.expect(page.get_by_role("status").first).to_contain_text("passkey was added")
        page.get_by_role("button", name="Sign out", exact=True).click()
        page.wait_for_url(protected.portal + "/sign-in")  # the answer that clears the cookie
        assert not [c for c in context.cookies() if c["name"] == "openmfa_auth"]
        # The site again: password, then the passkey, and back at the site.
        page.goto(protected.url + "/by-passkey")
        page.get_by_label("User name", exact=True).fill("ada")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.get_by_role("button", name="Sign in with a passkey", exact=True).click()
        page.wait_for_url(protected.url + "/by-passkey", timeout=60_000)
        playwright_api.expect(page.get_by_role("heading")).to_have_text("Hello ada")
    finally:
        context.close()


def test_a_return_address_elsewhere_is_refused(protected: Protected) -> None:
    portal = protected.portal.replace("auth.example.localhost", "127.0.0.1")
    for rd in (
        "https://evil.example.org/",
        "https://example.localhost.evil.org/",
        "https://evil.org\\@app.example.localhost/",
        "javascript:alert(1)",
    ):
        r = httpx.get(portal + "/sign-in?rd=" + quote(rd, safe=""))
        assert r.status_code == 400 and "not a site of this sign-in" in r.text, rd


def test_upgrade_and_rollback_behind_nginx_with_no_gap(protected: Protected) -> None:
    """`adapter upgrade nginx` puts a new portal in front (the old one as backup), then alone;
    the old portal stops; `adapter rollback nginx` goes back. Meanwhile a signed-in person and an
    anonymous one keep asking the site: the signed-in one is always let in (the new portal
    takes the old one's cookie), the anonymous one never is."""
    (old,) = protected.portals
    host = protected.url.split("//")[1]
    base = f"http://127.0.0.1:{host.split(':')[1]}"
    cfg = ForwardAuthConfig(
        "example.localhost",
        "openmfa_auth",
        3600.0,
        bytes.fromhex((protected.folder / "forward-auth.key").read_text().strip()),
        protected.portal,
    )
    counts = {"signed_in_ok": 0, "signed_in_refused": 0, "anonymous_sent_to_sign_in": 0,
              "anonymous_let_in": 0, "errors": 0}  # fmt: skip
    halt = threading.Event()

    def loop() -> None:
        # A connection each (as curl): a kept-alive one that nginx's reload closes between two
        # requests is a client's retry, not an answer (browsers retry it by themselves).
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=base, headers={"Host": host}, timeout=10, limits=fresh) as c:
            for _ in range(5000):  # bounded; stopped by the test well before
                if halt.is_set():
                    return
                # A cookie of its own each time: nginx's cache of "yes" answers (by cookie)
                # must not hide the portal behind it.
                cookie = Cookies(cfg).issue("ada", "ada@example.com", "Ada L", time.time())
                r = c.get("/upgrade", headers={"Cookie": f"openmfa_auth={cookie}"})
                counts["signed_in_ok" if r.status_code == 200 else "signed_in_refused"] += 1
                r = c.get("/upgrade")
                if r.status_code == 302 and r.headers["location"].startswith(protected.portal):
                    counts["anonymous_sent_to_sign_in"] += 1
                elif r.status_code == 200:
                    counts["anonymous_let_in"] += 1
                else:
                    counts["errors"] += 1

    runner = threading.Thread(target=loop)
    runner.start()
    try:
        wait_for(lambda: counts["signed_in_ok"] >= 5, "the loop to start")
        new = protected.start_portal(free_port())
        said = protected.adapter("upgrade", portals=[new])
        assert f"only {new} now" in said and f"{old} as backup" in said, said
        stop(protected.portals.pop(old))  # the old release's portal goes away
        mark = counts["signed_in_ok"]
        wait_for(lambda: counts["signed_in_ok"] >= mark + 5, "sign-ins through the new portal")
        back = protected.start_portal(int(old.split(":")[1]))
        said = protected.adapter("rollback", portals=[new])
        assert f"only {back} now" in said, said
        stop(protected.portals.pop(new))
        mark = counts["signed_in_ok"]
        wait_for(lambda: counts["signed_in_ok"] >= mark + 5, "sign-ins after the rollback")
    finally:
        halt.set()
        runner.join(timeout=60)
    print(f"no-gap loop through nginx: {counts}")
    assert counts["signed_in_refused"] == 0 and counts["anonymous_let_in"] == 0, counts
    assert counts["errors"] == 0 and counts["anonymous_sent_to_sign_in"] > 10, counts
    status = cli(protected.folder, "adapter", "status", "nginx", "--config",
                 str(protected.folder / "adapter.toml")).stdout  # fmt: skip
    assert f"portals {back}" in status and "backup" not in status


def test_with_the_portal_down_the_site_is_never_reached(protected: Protected) -> None:
    before = len(protected.seen)
    for proc in protected.portals.values():
        stop(proc)
    host = protected.url.split("//")[1]
    r = httpx.get(f"http://127.0.0.1:{host.split(':')[1]}/reports", headers={"Host": host})
    assert r.status_code >= 500 and len(protected.seen) == before
