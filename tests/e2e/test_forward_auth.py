"""Forward-auth through a real nginx (Debian's, ``auth_request``): a protected site behind it
is reached only after OpenMFA's sign-in (the portal's pages: password, then a code), and the
site sees ``Remote-User``. Chromium (Debian's, by Playwright) resolves *.example.com to
loopback; nginx, the portal, the node and the site are real processes."""

from __future__ import annotations

import http.server
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright import sync_api as playwright_api

from .helpers import OPENMFA, cli, free_port, init, oathtool, server, start_service, stop, wait_for

CHROMIUM = "/usr/bin/chromium"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"
PASSWORD = "correct horse battery"
NGINX = """
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log {folder}/access.log;
  client_body_temp_path {folder}/tmp; proxy_temp_path {folder}/tmp;
  fastcgi_temp_path {folder}/tmp; uwsgi_temp_path {folder}/tmp; scgi_temp_path {folder}/tmp;
  server {{
    listen 127.0.0.1:{port};
    server_name app.example.com;
    location = /internal/openmfa {{
      internal;
      proxy_pass http://127.0.0.1:{portal}/portal/auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-For $remote_addr;
    }}
    location / {{
      auth_request /internal/openmfa;
      auth_request_set $user $upstream_http_remote_user;
      auth_request_set $signin $upstream_http_location;
      error_page 401 =302 $signin;
      proxy_set_header Remote-User $user;
      proxy_pass http://127.0.0.1:{site};
    }}
  }}
}}
"""


@dataclass
class Protected:
    url: str
    """The protected site, through nginx (http://app.example.com:PORT)."""
    portal: str
    """The portal's public address (http://auth.example.com:PORT/portal)."""
    seen: list[str] = field(default_factory=list)
    """Remote-User of every request that reached the site."""
    procs: list[subprocess.Popen[str]] = field(default_factory=list)


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
    portal_port, nginx_port = free_port(), free_port()
    seen: list[str] = []
    handler = type("Handler", (Site,), {"seen": seen})
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    public = f"http://auth.example.com:{portal_port}/portal"
    out = Protected(f"http://app.example.com:{nginx_port}", public, seen)
    try:
        with server(dd) as node:
            (folder / "portal.toml").write_text(
                f'[portal]\nlisten = "127.0.0.1:{portal_port}"\nnodes = ["{node.url}"]\n'
                'api_key_file = "portal.key"\nattempts_per_minute = 1000\n'
                '[forward_auth]\nenabled = true\ncookie_domain = "example.com"\n'
                f'public_url = "{public}"\n'
            )
            argv = ["portal", "serve", "--config", str(folder / "portal.toml")]
            health = f"http://127.0.0.1:{portal_port}/portal/healthz"
            out.procs.append(start_service(argv, health, folder / "portal.log"))
            web = base / "nginx"
            (web / "tmp").mkdir(parents=True)
            conf = NGINX.format(
                folder=web, port=nginx_port, portal=portal_port, site=site.server_port
            )
            (web / "nginx.conf").write_text(conf)
            nginx = subprocess.Popen(
                ["nginx", "-p", str(web), "-c", str(web / "nginx.conf")],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            out.procs.append(nginx)

            def up() -> bool:
                assert nginx.poll() is None, (web / "error.log").read_text()
                try:
                    httpx.get(f"http://127.0.0.1:{nginx_port}/", timeout=2)
                    return True
                except httpx.HTTPError:
                    return False

            wait_for(up, "nginx")
            yield out
    finally:
        for proc in reversed(out.procs):
            stop(proc)
        site.shutdown()
        site.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--host-resolver-rules=MAP *.example.com 127.0.0.1"],
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
        assert cookie["domain"] in (".example.com", "example.com") and cookie["httpOnly"]
        # Signed in already: the next site request passes at once.
        page.goto(protected.url + "/other")
        playwright_api.expect(page.get_by_role("heading")).to_have_text("Hello ada")
        # A forged or altered cookie is not a sign-in.
        reached = len(protected.seen)
        forged = cookie["value"][:-2] + ("AA" if cookie["value"][-2:] != "AA" else "BB")
        jar = {"openmfa_auth": forged}
        r = httpx.get(protected.url.replace("app.example.com", "127.0.0.1") + "/x",
                      headers={"Host": protected.url.split("//")[1]}, cookies=jar)  # fmt: skip
        assert r.status_code == 302 and r.headers["location"].startswith(protected.portal)
        assert len(protected.seen) == reached
    finally:
        context.close()


def test_a_return_address_elsewhere_is_refused(protected: Protected) -> None:
    portal = protected.portal.replace("auth.example.com", "127.0.0.1")
    for rd in ("https://evil.example.org/", "https://example.com.evil.org/", "javascript:alert(1)"):
        r = httpx.get(portal + "/sign-in?rd=" + quote(rd, safe=""))
        assert r.status_code == 400 and "not a site of this sign-in" in r.text, rd


def test_with_the_portal_down_the_site_is_never_reached(protected: Protected) -> None:
    before = len(protected.seen)
    stop(protected.procs[0])  # the portal
    host = protected.url.split("//")[1]
    r = httpx.get(f"http://127.0.0.1:{host.split(':')[1]}/reports", headers={"Host": host})
    assert r.status_code >= 500 and len(protected.seen) == before
