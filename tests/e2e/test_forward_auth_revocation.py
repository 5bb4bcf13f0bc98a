"""A forward-auth cookie can be taken back: a person signs in through one portal host, the
cookie is copied, and after each of the five events that end a session — signing out, signing
out everywhere, being disabled, deleted or locked — both portal hosts refuse the copy within
seconds; a portal host whose view of what ended has grown old (the node stopped) refuses every
cookie. Real processes: one node, two ``openmfa portal serve`` hosts sharing the forward-auth
key, the person's codes from oathtool."""

from __future__ import annotations

import base64
import contextlib
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .helpers import (
    OPENMFA,
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
PEOPLE = ("ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy")
MAX_AGE = 5


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


@dataclass
class Deployment:
    dd: Path
    node: Server
    portals: list[str]
    """Each portal host's base URL (http://127.0.0.1:PORT/portal)."""

    def sign_in(self, user: str) -> tuple[httpx.Client, str]:
        """``user`` signs in through the first portal host on the way to the site: their
        portal session and the forward-auth cookie's value."""
        h = httpx.Client(base_url=self.portals[0], headers={"Accept-Language": "en"})
        first = h.get("/sign-in", params={"rd": SITE})
        step = h.post("/sign-in", data={"csrf": csrf(first), "user": user, "password": PASSWORD})
        assert step.status_code == 303, step.text
        page = h.get("/second-factor")
        code = oathtool("--totp", "-b", SEED)
        done = h.post("/second-factor", data={"csrf": csrf(page), "code": code})
        assert done.status_code == 303 and done.headers["location"] == SITE, done.text
        found = [c for c in done.headers.get_list("set-cookie") if c.startswith("openmfa_auth=")]
        assert found and "Domain=example.com" in found[0], done.headers
        return h, found[0].split(";")[0].split("=", 1)[1]

    def answers(self, cookie: str) -> list[int]:
        """What each portal host's forward-auth check answers for ``cookie``."""
        said = []
        for base in self.portals:
            r = httpx.get(
                base + "/auth",
                headers={"Cookie": f"openmfa_auth={cookie}", "X-Original-URL": SITE},
                timeout=10,
            )
            said.append(r.status_code)
        return said


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp("revocation")
    dd = base / "node"
    init(dd)
    for name in PEOPLE:
        cli(dd, "user", "add", name, "--email", f"{name}@example.com")
        subprocess.run(
            [OPENMFA, "user", "set-password", name, "--password-stdin", "--data-dir", str(dd)],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        cli(dd, "method", "add", name, "totp", "--secret", SEED, "--no-qr")
    key = cli(dd, "apikey", "create", "portal-hosts", "--scope", "portal").stdout.split()[-1]
    fa_key = secrets.token_hex(32)
    with server(dd) as node:
        procs, portals = [], []
        try:
            for n in (1, 2):
                home = base / f"portal-{n}"
                home.mkdir()
                for name, value in (("portal.key", key), ("forward-auth.key", fa_key)):
                    (home / name).write_text(value + "\n")
                    (home / name).chmod(0o600)
                port = free_port()
                (home / "portal.toml").write_text(
                    f'[portal]\nlisten = "127.0.0.1:{port}"\nnodes = ["{node.url}"]\n'
                    'api_key_file = "portal.key"\nattempts_per_minute = 1000\n'
                    '[forward_auth]\nenabled = true\ncookie_domain = "example.com"\n'
                    f'public_url = "http://auth.example.com:{port}/portal"\n'
                    f"revocation_poll_seconds = 0.5\nrevocation_max_age_seconds = {MAX_AGE}\n"
                )
                url = f"http://127.0.0.1:{port}/portal"
                argv = ["portal", "serve", "--config", str(home / "portal.toml")]
                procs.append(start_service(argv, url + "/healthz", home / "portal.log"))
                portals.append(url)
            yield Deployment(dd, node, portals)
        finally:
            for p in procs:
                stop(p)


def _refused_everywhere(d: Deployment, cookie: str, what: str) -> float:
    """Seconds until both portal hosts refuse ``cookie`` (bounded wait)."""
    start = time.monotonic()
    wait_for(lambda: d.answers(cookie) == [401, 401], f"both portals to refuse after {what}", 30)
    return time.monotonic() - start


def test_each_event_takes_a_copied_cookie_back_on_both_portal_hosts(d: Deployment) -> None:
    cookies, clients = {}, {}
    for name in ("ada", "bob", "cy", "dee", "eve"):
        clients[name], cookies[name] = d.sign_in(name)
    for name in ("bob", "cy", "dee", "eve"):
        clients[name].close()
    ada = clients["ada"]
    for name, cookie in cookies.items():
        assert not _readable(name, cookie)  # sealed: no name, no e-mail to read
        wait_for(lambda c=cookie: d.answers(c) == [200, 200], f"{name}'s cookie taken", 30)  # type: ignore[misc]
    r = httpx.get(
        d.portals[1] + "/auth",
        headers={"Cookie": f"openmfa_auth={cookies['eve']}", "X-Original-URL": SITE},
    )
    assert r.headers["remote-user"] == "eve" and r.headers["remote-email"] == "eve@example.com"
    took = {}
    # 1. ada signs out on the first portal host; her copied cookie is refused on both.
    methods = ada.get("/methods")
    out = ada.post("/sign-out", data={"csrf": csrf(methods)})
    ada.close()
    assert out.status_code == 303
    took["sign-out"] = _refused_everywhere(d, cookies["ada"], "ada's sign-out")
    # 2-4. The administrator's commands.
    cli(d.dd, "user", "sign-out-everywhere", "bob")
    took["sign-out-everywhere"] = _refused_everywhere(d, cookies["bob"], "sign-out-everywhere")
    cli(d.dd, "user", "disable", "cy")
    took["disable"] = _refused_everywhere(d, cookies["cy"], "disable")
    cli(d.dd, "user", "delete", "dee")
    took["delete"] = _refused_everywhere(d, cookies["dee"], "delete")
    # 5. eve is locked by wrong codes.
    for _ in range(10):
        cli(d.dd, "verify", "eve", "000000", expect=None)
    assert "locked until" in cli(d.dd, "user", "show", "eve").stdout
    took["lock"] = _refused_everywhere(d, cookies["eve"], "the lock")
    cli(d.dd, "user", "enable", "cy")  # enabled again: the old cookie stays refused
    assert d.answers(cookies["cy"]) == [401, 401]
    cli(d.dd, "user", "unlock", "eve")
    assert d.answers(cookies["eve"]) == [401, 401]
    print("seconds until both portal hosts refused the copied cookie:", took)


def test_a_sign_out_ends_every_cookie_of_the_session_even_after_the_portal_forgot_it(
    d: Deployment,
) -> None:
    """gus re-authenticates (a new node session) and goes back to the site (a second cookie);
    a sign-out ends both copies. hal's portal session is gone (idle, or another browser): his
    browser's sign-out, with only the site's cookie, still ends it."""
    gus, first = d.sign_in("gus")
    codes = cli(d.dd, "method", "add", "gus", "backup-codes").stdout
    code = re.findall(r"\b\d{5}-\d{5}\b", codes)[0]
    confirm = gus.get("/confirm")
    step = gus.post("/confirm", data={"csrf": csrf(confirm), "password": PASSWORD})
    assert step.status_code == 303, step.text
    page = gus.get("/second-factor")
    done = gus.post("/second-factor", data={"csrf": csrf(page), "code": code})
    assert done.status_code == 303, done.text
    again = gus.get("/sign-in", params={"rd": SITE})
    assert again.status_code == 303 and again.headers["location"] == SITE
    second = again.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert second != first
    wait_for(lambda: d.answers(first) == d.answers(second) == [200, 200], "gus's cookies", 30)
    out = gus.post("/sign-out", data={"csrf": csrf(gus.get("/methods"))})
    gus.close()
    assert out.status_code == 303
    _refused_everywhere(d, first, "gus's sign-out (the cookie before his re-authentication)")
    _refused_everywhere(d, second, "gus's sign-out")
    hal, cookie = d.sign_in("hal")
    hal.close()
    wait_for(lambda: d.answers(cookie) == [200, 200], "hal's cookie taken", 30)
    origin = d.portals[0].removesuffix("/portal")
    with httpx.Client(base_url=d.portals[0]) as browser:  # no portal session any more
        out = browser.post(
            "/sign-out",
            headers={"Cookie": f"openmfa_auth={cookie}", "Origin": origin},
        )
        assert out.status_code == 303, out.text
        elsewhere = browser.post(
            "/sign-out",
            headers={"Cookie": f"openmfa_auth={cookie}", "Origin": "http://evil.example"},
        )
        assert elsewhere.status_code == 403  # another site cannot sign people out
    _refused_everywhere(d, cookie, "hal's sign-out without a portal session")


def test_a_session_ended_from_another_browser_takes_its_cookie_back_on_both_hosts(
    d: Deployment,
) -> None:
    """ivy signs in on the way to the site (and never opens a portal page after); from another
    browser, on the other portal host, she ends that session on "Where you are signed in": its
    cookie is refused on both hosts, and its portal session is over."""
    site_browser, cookie = d.sign_in("ivy")
    wait_for(lambda: d.answers(cookie) == [200, 200], "ivy's cookie taken", 30)
    codes = cli(d.dd, "method", "add", "ivy", "backup-codes").stdout
    code = re.findall(r"\b\d{5}-\d{5}\b", codes)[0]
    with httpx.Client(base_url=d.portals[1], headers={"Accept-Language": "en"}) as desk:
        first = desk.get("/sign-in")
        step = desk.post(
            "/sign-in", data={"csrf": csrf(first), "user": "ivy", "password": PASSWORD}
        )
        assert step.status_code == 303, step.text
        page = desk.get("/second-factor")
        done = desk.post("/second-factor", data={"csrf": csrf(page), "code": code})
        assert done.status_code == 303, done.text
        listed = desk.get("/sessions")
        ends = re.findall(r'action="/portal/(sessions/[^/"]+/end)"', listed.text)
        assert len(ends) == 1 and "This browser" in listed.text, listed.text
        out = desk.post("/" + ends[0], data={"csrf": csrf(listed)})
        assert out.status_code == 303 and out.headers["location"] == "/portal/sessions"
        took = _refused_everywhere(d, cookie, "ending the session from another browser")
        print(f"seconds until both portal hosts refused the ended session's cookie: {took:.1f}")
        gone = site_browser.get("/methods")
        assert gone.status_code == 303 and gone.headers["location"] == "/portal/sign-in"
        assert desk.get("/methods").status_code == 200  # the browser that ended it stays
    site_browser.close()


def test_a_portal_host_that_cannot_hear_from_the_node_refuses_every_cookie(
    d: Deployment,
) -> None:
    fay, cookie = d.sign_in("fay")
    fay.close()
    wait_for(lambda: d.answers(cookie) == [200, 200], "fay's cookie taken", 30)
    d.node.stop()
    took = _refused_everywhere(d, cookie, "the node stopped")
    print(f"seconds until both portal hosts failed closed with the node stopped: {took:.1f}")
    log = (d.dd.parent / "portal-1" / "portal.log").read_text()
    assert "forward-auth refuses every cookie until a node answers" in log


@pytest.fixture
def d(deployment: Deployment) -> Deployment:
    return deployment


def _readable(name: str, cookie: str) -> bool:
    """Whether ``name`` can be read in ``cookie`` — quoted (as JSON holds it) or as an e-mail
    address's first part, in its text or in any base64url part of it. (The bare name is no
    test: a two-letter name occurs by chance in random text now and then.)"""
    parts = [cookie.encode()]
    for piece in re.split(r"[^A-Za-z0-9_-]+", cookie):
        with contextlib.suppress(ValueError):
            parts.append(base64.urlsafe_b64decode(piece + "=" * (-len(piece) % 4)))
    said = (b'"' + name.encode() + b'"', name.encode() + b"@")
    return any(s in p for p in parts for s in said)
