"""The whole deployment upgraded as one, under load on every channel (shared by
tests/e2e/test_deployment_upgrade.py and ``bench/farm.py --deployment``).

Nodes, two portal hosts, two mobile-service hosts and an adapter host, each installed with
``openmfa install`` (own release environments and install record) from release A, behind one
HAProxy (docs/haproxy-deployment.cfg: the SDK, the portal and the mobile backends). The adapter
host registers OpenMFA as LemonLDAP::NG's second factor (calling the SDK through HAProxy) and
as nginx's forward-auth (nginx in front of a site asks the two portal hosts, and sends people
to the portal's sign-in through HAProxy), and runs ``openmfa adapter agent``. Every host beside
the nodes joins the farm's inventory (``openmfa farm join-component``). Load generators run
throughout, each bounded in count and time: SDK authentications through HAProxy, RADIUS
sign-ins failing over between the nodes (a code alone; and password, then a code asked for by
an Access-Challenge, as a VPN gateway does), push approvals by a reference authenticator
(kept running, as an app is) through the mobile backend, portal sign-ins (password, then a
TOTP code) through the portal backend (its forms, and now and then Debian's Chromium driven by
Playwright), sign-ins to nginx's site (curl: sent to the portal, password, code, back at the
site), and LemonLDAP::NG sign-ins (password, then a code). Then ``openmfa farm upgrade
--bundle B --hold`` on the master moves every node, then each mobile host, then each portal
host, then the adapter host (its registration moved with no gap); ``then`` runs next under the
same load (the test rolls everything back with ``openmfa farm rollback``).

Release A is the newest one releases.toml records, built from its commit and installed on
every host from the bundle its own ``openmfa bundle create`` made (as a customer runs it);
release B is this tree, built as the next version.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from openmfa.core.totp import step_at, totp
from openmfa.radius import packet as p
from openmfa.sdk.client import SdkClient

from .app_phone import AppPhone
from .farm_scenario import (
    RADIUS_DEAD_SECONDS,
    RADIUS_SECRET,
    RADIUS_SENDS,
    RADIUS_WAIT,
    Load,
    Node,
    answers,
    install_nodes,
    make_bundle,
    radius_answer,
    run,
    start_installed,
    stop_service,
)
from .helpers import OPENMFA, Phone, Watching, free_port, stop
from .oidc_channels import OidcChannels, people, register
from .services import PROTECTED_SITE, Idp, lemonldap, nginx, nginx_conf
from .test_forward_auth import CHROMIUM
from .test_upgrade import NEW, OLD, ROOT

A = OLD
B = NEW
USERS = 60
PORTAL_USERS = 16
"""People with a password and a TOTP method, shared by the portal, session, browser and
forward-auth channels (a code once per 30-second step each: the node refuses a code again)."""
PASSWORD = "a long portal password"
CHALLENGE_USERS = 10
"""People who sign in through a RADIUS gateway that checks their password first, then asks for
a code (Access-Challenge); the first of the other users, given the portal password."""
VPN_ADDRESS = "127.0.0.2"
"""That gateway's address (RADIUS client ``vpn``, ``--primary local``)."""
NODE_NAMES = ("node-a", "node-b", "node-c")
LLNG_USERS = ("dwho", "rtyler", "msmith")
"""LemonLDAP::NG's demo users (each one's password is the name), with a TOTP method here."""
SITE_HOST = "app.example.localhost"
"""The site nginx protects (forward-auth; curl reaches it on loopback with --resolve)."""
AUTH_HOST = "auth.example.localhost"
"""The portal's public name (HAProxy's portal frontend): the sign-in cookie is for the domain
example.localhost, so the site's requests carry it."""
NGINX_SITES = (
    PROTECTED_SITE
    + """  server {{
    listen 127.0.0.1:{site};
    location / {{ default_type text/plain; return 200 "Hello $http_remote_user\\n"; }}
  }}
"""
)
"""The adapter host's nginx: a protected site (the second server, which says who nginx let in),
the three files `openmfa adapter register nginx` writes included."""
SESSION_LIFE = 14 * 60
"""How long the session channel keeps one sign-in: a little less than the node's session token
lives (``[portal] session_minutes``, 15 by default), after which the portal rightly asks again."""
BROWSER_PAUSE = 15.0
"""Seconds between two browser sign-ins (a few a minute: Chromium is heavy on 2 cores)."""


@dataclass
class Component:
    """A portal, mobile-service or adapter host installed on its own (no data file, no
    database)."""

    name: str
    kind: str
    root: Path
    record: Path
    port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def var(self) -> Path:
        return self.root / "var"

    @property
    def config(self) -> Path:
        return self.var / f"{self.kind}.toml"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def openmfa(self, *args: str) -> str:
        return run(str(self.root / "current" / "venv" / "bin" / "openmfa"), *args)

    def start(self) -> None:
        verb = "agent" if self.kind == "adapter" else "serve"
        self.procs.append(
            start_installed(
                self.root, [self.kind, verb, "--config", str(self.config)], self.record, self._ready
            )
        )

    def _ready(self) -> bool:
        if self.kind == "adapter":  # no port: it has taken its lock (then it reports)
            lock = self.var / "adapter.lock"
            pid = lock.read_text().strip() if lock.exists() else ""
            return pid.isdigit() and Path(f"/proc/{pid}").exists()
        return answers(f"{self.base}/{self.kind}/healthz")

    def stop(self) -> None:
        stop_service(self.var / f"{self.kind}.lock", self.procs)

    def release(self) -> str:
        """The release the running service reports in its /metrics (an adapter host: the one
        its agent runs, `current`, which it starts again after each order)."""
        if self.kind == "adapter":
            lock = (self.var / "adapter.lock").read_text().strip()
            assert lock and Path(f"/proc/{lock}").exists(), "the adapter agent is not running"
            return Path(os.readlink(self.root / "current")).name
        text = httpx.get(self.base + "/metrics", timeout=5).text
        found = re.search(r'openmfa_build_info\{part="\w+",release="([^"]+)"\}', text)
        assert found, text
        return found.group(1)


CHANNELS = (
    "sdk", "radius", "challenge", "push", "portal", "browser", "session", "forward-auth",
    "lemonldap", "guard", "app-push", "oidc", "eam",
)  # fmt: skip


@dataclass
class Channel:
    name: str
    tried: int = 0
    accepted: int = 0
    failed: list[str] = field(default_factory=list)
    longest: float = 0.0
    """The longest a single sign-in of this channel took (seconds)."""
    slowest: str = ""
    """When the longest came, and what it said (a push: how long each of its steps took)."""
    took: list[float] = field(default_factory=list)
    """How long each sign-in took: the median is what one takes anyway on this machine, so
    longest - median is the most the upgrade made anyone wait."""

    def line(self) -> str:
        median = statistics.median(self.took) if self.took else 0.0
        return (
            f"{self.name:<12} tried {self.tried:>5}  accepted {self.accepted:>5}  "
            f"failed {len(self.failed):>3}  longest {self.longest:5.2f} s  "
            f"median {median:4.2f} s  longest - median {self.longest - median:5.2f} s"
        )


@dataclass
class DeploymentLoad:
    """Bounded load on every channel; each sign-in timed and counted on its channel."""

    base: Load
    sdk_url: str
    admin: str
    portal_url: str
    portal_seeds: dict[str, bytes]
    phone: Watching | None
    """The reference authenticator kept running, as an app is (one long-poll open); none in
    a lean deployment (no mobile hosts)."""
    idp: Idp | None
    """LemonLDAP::NG; none in a lean deployment (no adapter host)."""
    llng_seeds: dict[str, bytes]
    challenge_seeds: dict[str, bytes] = field(default_factory=dict)
    """The users of the challenge channel (password, then a code)."""
    site: str = ""
    """The protected site through nginx (http://app.example.localhost:PORT)."""
    auth: str = ""
    """The portal's public URL, as forward-auth sends people to it."""
    resolve: list[str] = field(default_factory=list)
    """curl's --resolve for the site's and the portal's names (both on loopback)."""
    jars: Path = Path()
    """A folder for curl's cookie jars (one a forward-auth sign-in)."""
    channels: dict[str, Channel] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    used: dict[str, int] = field(default_factory=dict)
    vpn_dead_until: dict[int, float] = field(default_factory=dict)
    app: AppPhone | None = None
    """The Authenticator web app in a phone's Chromium (tests/e2e/app_phone.py)."""
    oidc: OidcChannels | None = None
    """An application's and Entra ID's sign-ins (tests/e2e/oidc_channels.py)."""

    def __post_init__(self) -> None:
        for name in CHANNELS:
            self.channels[name] = Channel(name)

    def count(self, channel: str, good: bool, seconds: float, why: str) -> None:
        with self.lock:
            c = self.channels[channel]
            c.tried += 1
            c.took.append(seconds)
            if seconds > c.longest:
                c.longest, c.slowest = seconds, f"{time.strftime('%H:%M:%S')} {why}"
            if good:
                c.accepted += 1
            else:  # when, to set beside the upgrade's steps and HAProxy's log
                c.failed.append(f"{time.strftime('%H:%M:%S')} ({seconds:.1f} s) {why}")

    def worker(
        self, channel: str, once: Callable[[], tuple[bool, str] | None], pause: float
    ) -> None:
        deadline = time.monotonic() + 1800  # bounded in time as well as by the stop flag
        for _ in range(100_000):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            started = time.monotonic()
            try:
                done = once()
            except Exception as exc:  # counted as a failure of its channel, never hidden
                done = (False, f"{channel}: {exc!r}")
            if done is None:
                time.sleep(0.5)
                continue
            self.count(channel, done[0], time.monotonic() - started, done[1])
            self.stop.wait(pause)

    def portal_credentials(self, seeds: dict[str, bytes] | None = None) -> tuple[str, str] | None:
        step = step_at(time.time())
        with self.lock:
            for name, key in (self.portal_seeds if seeds is None else seeds).items():
                if self.used.get(name, -1) < step:
                    self.used[name] = step
                    return name, totp(key, step * 30)
        return None

    def portal_once(self) -> tuple[bool, str] | None:
        """A browser's sign-in through the portal backend: password, then a code, then the
        person's methods page. A fresh client: a new visitor each time."""
        cred = self.portal_credentials()
        if cred is None:
            return None
        user, code = cred
        with httpx.Client(base_url=self.portal_url, timeout=30) as h:
            page = h.get("/sign-in")
            form = {"csrf": _csrf(page.text), "user": user, "password": PASSWORD}
            r = h.post("/sign-in", data=form)
            if r.status_code != 303 or not r.headers["location"].endswith("/second-factor"):
                return False, f"portal {user} password step: {r.status_code} {r.text[:200]}"
            page = h.get("/second-factor")
            r = h.post("/second-factor", data={"csrf": _csrf(page.text), "code": code})
            if r.status_code != 303 or not r.headers["location"].endswith("/methods"):
                return False, f"portal {user} code step: {r.status_code} {r.text[:300]}"
            page = h.get("/methods")
            if page.status_code != 200 or user not in page.text:
                return False, f"portal {user} methods page: {page.status_code}"
        return True, ""

    def curl(self, jar: Path, url: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        """curl as a person's browser would ask (its cookie jar, the sites' names on loopback):
        (status, the Location it was sent to, the body)."""
        cmd = ["curl", "-sS", "--max-time", "30", "-b", str(jar), "-c", str(jar)]
        cmd += ["-w", "\n%{http_code} %{redirect_url}"]
        for entry in self.resolve:
            cmd += ["--resolve", entry]
        for k, v in (form or {}).items():
            cmd += ["--data-urlencode", f"{k}={v}"]
        done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"curl {url}: {done.stderr.strip()[-300:]}")
        body, _, tail = done.stdout.rpartition("\n")
        status, _, location = tail.partition(" ")
        return int(status), location, body

    def fa_once(self) -> tuple[bool, str] | None:
        """A sign-in to the site nginx protects (curl): sent to the portal's sign-in, the
        password, then a code, and back at the site, which sees the user. Not signed in, and
        on the password alone, the site must send the visitor to the sign-in (guard)."""
        cred = self.portal_credentials()
        if cred is None:
            return None
        user, code = cred
        self._fa = n = getattr(self, "_fa", 0) + 1
        jar = self.jars / f"fa-{n}.txt"
        try:
            wanted = f"{self.site}/reports?n={n}"
            status, to, body = self.curl(jar, wanted)
            sign_in = f"{self.auth}/sign-in?rd="
            held = status == 302 and to.startswith(sign_in)
            self.count("guard", held, 0.0, f"guard forward-auth: not signed in got {status} {to}")
            if not held:
                return False, f"forward-auth {user}: the site answered {status} {to} {body[:80]}"
            status, to, body = self.curl(jar, to)
            form = {"csrf": _csrf(body), "user": user, "password": PASSWORD}
            status, to, body = self.curl(jar, f"{self.auth}/sign-in", form)
            if status != 303 or not to.endswith("/second-factor"):
                return False, f"forward-auth {user} password step: {status} {to} {body[:200]}"
            alone = self.curl(jar, wanted)  # the password alone opens nothing
            held = alone[0] == 302 and alone[1].startswith(sign_in)
            why = f"guard forward-auth: the password alone got {alone[0]} {alone[2][:80]}"
            self.count("guard", held, 0.0, why)
            status, to, body = self.curl(jar, to)
            form = {"csrf": _csrf(body), "code": code}
            status, to, body = self.curl(jar, f"{self.auth}/second-factor", form)
            if status != 303 or to != wanted:
                return False, f"forward-auth {user} code step: {status} {to} {body[:300]}"
            status, to, body = self.curl(jar, wanted)
            good = status == 200 and body.strip() == f"Hello {user}"
            return good, f"forward-auth {user}: the site answered {status} {to} {body[:80]!r}"
        finally:
            jar.unlink(missing_ok=True)

    def browser_once(self, browser: Any) -> tuple[bool, str] | None:
        """A person's sign-in at the portal in Chromium (Playwright): the sign-in page, the
        password, the code, and their methods page."""
        cred = self.portal_credentials()
        if cred is None:
            return None
        user, code = cred
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.goto(self.portal_url + "/sign-in")
            page.get_by_label("User name", exact=True).fill(user)
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.get_by_label("Verification code", exact=True).fill(code)
            page.get_by_role("button", name="Verify", exact=True).click()
            page.wait_for_url(self.portal_url + "/methods")
            shown = page.content()
            return user in shown, f"browser {user}: the methods page does not name them"
        finally:
            context.close()

    def browser_worker(self) -> None:
        """The browser channel's thread: Debian's Chromium, one new context a sign-in."""
        from playwright import sync_api

        try:
            with sync_api.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    self.worker("browser", lambda: self.browser_once(browser), BROWSER_PAUSE)
                finally:
                    browser.close()
        except Exception as exc:  # Chromium did not start: a failure of the channel
            self.count("browser", False, 0.0, f"browser: {exc!r}")

    def lemonldap_once(self) -> tuple[bool, str] | None:
        assert self.idp is not None  # its channel runs only with the adapter host
        """A sign-in at LemonLDAP::NG (its demo user's password, then a code it checks with
        OpenMFA through the adapter's registration). Between two codes of a user (one per
        30-second step), now and then the password alone, which must be asked for the second
        factor and get no session (guard; no wrong code is typed, which would lock the user)."""
        step = step_at(time.time())
        with self.lock:
            user = next((u for u in LLNG_USERS if self.used.get("llng:" + u, -1) < step), None)
            if user is not None:
                self.used["llng:" + user] = step
        if user is None:
            if time.monotonic() - getattr(self, "_llng_guard", 0.0) > 5:
                self._llng_guard = started = time.monotonic()
                action, cookie, _ = self.idp.sign_in(LLNG_USERS[0], None)
                held = action.endswith("2fcheck") and not cookie
                why = f"guard lemonldap: the password alone got {action or cookie!r}"
                self.count("guard", held, time.monotonic() - started, why)
            return None
        action, cookie, error = self.idp.sign_in(user, totp(self.llng_seeds[user], step * 30))
        asked = action.endswith("2fcheck")  # a session on the password alone would be a fault
        good = asked and cookie.startswith("lemonldap=")
        return good, f"lemonldap {user}: no session (form {action}, error {error or '-'})"

    def session_once(self) -> tuple[bool, str] | None:
        """One person signed in at the start keeps using the portal (same browser, same
        cookies) through the whole upgrade: every page shows their methods, never a sign-in —
        until the session's life ends (the node's session token, ``[portal] session_minutes``,
        15 by default: a slow run outlasts it), when they sign in again."""
        visitor = getattr(self, "_visitor", None)
        if visitor is not None and time.monotonic() - self._visitor_since > SESSION_LIFE:
            visitor.close()  # its life is over: a new sign-in, as the person would
            visitor = None
        if visitor is None:
            cred = self.portal_credentials()
            if cred is None:
                return None
            h = httpx.Client(base_url=self.portal_url, timeout=30)
            page = h.get("/sign-in")
            form = {"csrf": _csrf(page.text), "user": cred[0], "password": PASSWORD}
            h.post("/sign-in", data=form)
            page = h.get("/second-factor")
            r = h.post("/second-factor", data={"csrf": _csrf(page.text), "code": cred[1]})
            if r.status_code != 303 or not r.headers["location"].endswith("/methods"):
                h.close()
                return False, f"session: the first sign-in failed: {r.status_code}"
            self._visitor, self._visitor_user = h, cred[0]
            self._visitor_since = time.monotonic()
            self._closers.append(h.close)
            visitor = h
        page = visitor.get("/methods")
        good = page.status_code == 200 and self._visitor_user in page.text
        return good, f"session: /methods answered {page.status_code} {page.headers.get('location')}"

    def challenge_once(self, s: socket.socket) -> tuple[bool, str] | None:
        """A sign-in through a gateway that checks the password first (a VPN): the password
        to one server, its Access-Challenge, and the code with the State back to that server,
        as a NAS does (each sent again while the server is silent); a server silent to the
        password is skipped for a dead time and the next one asked — and when every server it
        still counts alive is silent, the ones in their dead time are asked after all, as a
        NAS whose servers all seem dead does (else a request in the moment one node restarts
        and the other drains would find no server)."""
        cred = self.portal_credentials(self.challenge_seeds)
        if cred is None:
            return None
        user, code = cred
        now = time.monotonic()
        ports = self.base.radius_ports
        alive = [port for port in ports if self.vpn_dead_until.get(port, 0.0) <= now]
        for port in [*alive, *(port for port in ports if port not in alive)]:
            first = _ask(s, port, user, PASSWORD)
            if first is None:
                self.vpn_dead_until[port] = time.monotonic() + RADIUS_DEAD_SECONDS
                continue
            state = first.get(p.STATE)
            if first.code != p.ACCESS_CHALLENGE or state is None:
                return False, f"challenge {user}: the password got {first.code} from :{port}"
            then = _ask(s, port, user, code, state, sends=FOLLOW_UP_SENDS)
            if then is None:
                return False, f"challenge {user}: :{port} challenged, then went silent"
            return then.code == p.ACCESS_ACCEPT, f"challenge {user}: {then.code} from :{port}"
        return False, f"challenge {user}: no server answered"

    def push_once(self) -> tuple[bool, str] | None:
        """A push sign-in through the SDK backend, seen and approved on the phone through the
        mobile backend."""
        assert self.phone is not None  # its channel runs only with the mobile hosts
        with SdkClient(self.sdk_url, self.admin, timeout=30) as sdk:
            t0 = time.monotonic()
            d = sdk.authenticate("pia", push=True)
            if d.pending is None:
                return False, f"push: no request opened ({d.reason})"
            t1 = time.monotonic()
            if self.phone.seen(d.pending.id, timeout=30) is None:
                return False, f"push {d.pending.id}: never reached the phone"
            t2 = time.monotonic()
            done = self.phone.answer(d.pending.id, "approve", d.pending.number, timeout=30)
            t3 = time.monotonic()
            if "error" in done:
                return False, f"push {d.pending.id}: the phone's answer failed: {done['error']}"
            out = sdk.push_outcome(d.pending.id, wait=20)
            steps = f"opened {t1 - t0:.1f} s, seen {t2 - t1:.1f} s, approved {t3 - t2:.1f} s"
            steps += f", outcome {time.monotonic() - t3:.1f} s"
            return out.accepted, f"push {d.pending.id}: {out.status} ({steps})"

    def guard_once(self, sdk: httpx.Client, udp: socket.socket) -> tuple[bool, str]:
        """MFA is never off: "nomfa" (no method) with no code, over the SDK and over RADIUS,
        must be refused on every node at every moment (counted as good when refused)."""
        self._guard = getattr(self, "_guard", 0) + 1
        if self._guard % 2:
            r = sdk.post(
                self.sdk_url + "/v1/authenticate",
                json={"user": "nomfa", "code": ""},
                headers={"authorization": f"Bearer {self.base.api_key}"},
            )
            passed = r.status_code == 200 and r.json()["accepted"] is True
            return not passed, f"guard sdk: nomfa let in without a second factor: {r.text}"
        let_in, why = self.base.radius_once(udp, ("nomfa", ""))
        return not let_in, f"guard radius: nomfa let in without a second factor ({why})"

    def workers(self) -> list[threading.Thread]:
        def sdk_once() -> tuple[bool, str] | None:
            cred = self.base.credentials()
            return None if cred is None else self.base.sdk_once(sdk_client, cred)

        def radius_once() -> tuple[bool, str] | None:
            cred = self.base.credentials()
            return None if cred is None else self.base.radius_once(udp, cred)

        def guard_once() -> tuple[bool, str]:
            return self.guard_once(guard_client, guard_udp)

        sdk_client, guard_client = httpx.Client(timeout=10), httpx.Client(timeout=10)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.settimeout(1.0)
        guard_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        guard_udp.settimeout(1.0)
        vpn = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        vpn.bind((VPN_ADDRESS, 0))
        self._closers = [
            sdk_client.close, guard_client.close, udp.close, guard_udp.close, vpn.close,
        ]  # fmt: skip
        app = (
            []
            if self.app is None
            else [threading.Thread(target=self.app.run, args=(self.stop, self.count))]
        )
        rps = [] if self.oidc is None else [
            threading.Thread(
                target=self.worker, args=(name, partial(self.oidc.once, name, self.count), 1.0)
            )
            for name in ("oidc", "eam")
        ]  # fmt: skip
        push = [] if self.phone is None else [
            threading.Thread(target=self.worker, args=("push", self.push_once, 0.5))
        ]  # fmt: skip
        adapter = [] if self.idp is None else [  # the adapter host's nginx and LemonLDAP::NG
            threading.Thread(target=self.browser_worker),
            threading.Thread(target=self.worker, args=("forward-auth", self.fa_once, 2.0)),
            threading.Thread(target=self.worker, args=("lemonldap", self.lemonldap_once, 0.5)),
        ]  # fmt: skip
        return [
            threading.Thread(target=self.worker, args=("sdk", sdk_once, 0.2)),
            threading.Thread(target=self.worker, args=("radius", radius_once, 0.2)),
            threading.Thread(
                target=self.worker, args=("challenge", lambda: self.challenge_once(vpn), 1.0)
            ),
            threading.Thread(target=self.worker, args=("portal", self.portal_once, 2.0)),
            threading.Thread(target=self.worker, args=("session", self.session_once, 1.0)),
            threading.Thread(target=self.worker, args=("guard", guard_once, 1.0)),
            *push,
            *adapter,
            *app,
            *rps,
        ]

    def close(self) -> None:
        for close in getattr(self, "_closers", []):
            close()

    def failures(self) -> list[str]:
        return [f for c in self.channels.values() for f in c.failed]


FOLLOW_UP_SENDS = 8
"""Sends of a challenge's follow-up (16 s): a gateway set up for a second factor waits 30 s
and more (the README's VPN examples), and the State it carries is answered by the server that
issued it — or by its next process, after a restart in place, which on a loaded machine can
take longer than three sends (one such follow-up went unanswered for 6.7 s in a CI run)."""


def _ask(
    s: socket.socket, port: int, user: str, password: str, state: bytes | None = None,
    *, sends: int = RADIUS_SENDS,
) -> p.Packet | None:  # fmt: skip
    """One request to one server, sent again while it is silent (``sends`` times)."""
    secret, auth = RADIUS_SECRET.encode(), os.urandom(16)
    attrs = [
        (p.USER_NAME, user.encode()),
        (p.USER_PASSWORD, p.hide_password(password.encode(), secret, auth)),
    ]
    attrs += [(p.STATE, state)] if state is not None else []
    raw = p.encode_request(p.ACCESS_REQUEST, secrets.randbelow(256), attrs, secret, auth)
    for _ in range(sends):
        s.sendto(raw, ("127.0.0.1", port))
        answer = radius_answer(s, auth, secret, RADIUS_WAIT)
        if answer is not None:
            return answer
    return None


def _csrf(text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found, text[:500]
    return found.group(1)


def haproxy_deployment_config(
    work: Path, ports: dict[str, int], backends: dict[str, list[tuple[str, int]]]
) -> Path:
    """docs/haproxy-deployment.cfg with this run's admin socket, frontend ports and servers."""
    text = (ROOT / "docs" / "haproxy-deployment.cfg").read_text()
    text = text.replace("/run/haproxy/admin.sock", str(work / "haproxy.sock"))
    for frontend, port in ports.items():
        default = {"openmfa_sdk": 8443, "portal": 8500, "mobile": 8490}[frontend]
        text = re.sub(
            rf"(frontend {frontend}\n    bind 127.0.0.1:){default}", rf"\g<1>{port}", text
        )
    lines = [ln for ln in text.splitlines() if not ln.startswith("    server ")]
    out: list[str] = []
    section = ""
    for i, line in enumerate(lines):
        if not line.startswith(" "):
            section = line.split()[1] if line.startswith("backend ") else ""
        out.append(line)
        last = i + 1 == len(lines) or not lines[i + 1].startswith(" ")
        if section and line.startswith(" ") and last:
            for name, port in backends[section]:
                cookie = f" cookie {name}" if section == "portal" else ""
                out.append(f"    server {name} 127.0.0.1:{port}{cookie}")
    cfg = work / "haproxy.cfg"
    cfg.write_text("\n".join(out) + "\n")
    return cfg


@dataclass
class Deployment:
    nodes: list[Node]
    portals: list[Component]
    mobiles: list[Component]
    adapters: list[Component]
    bundle_a: Path
    bundle_b: Path
    work: Path
    admin: str = ""
    seeds: dict[str, bytes] = field(default_factory=dict)
    idp: Idp | None = None
    """LemonLDAP::NG, while the scenario runs."""
    oidc: bool = False
    """The first release has the OpenID Connect provider (not the newest recorded release, A):
    the nodes' ``[oidc] issuer`` is the portal through HAProxy, the channels' clients are
    registered at the start. Otherwise the provider is never set up: a release without it
    refuses the section, and ``farm rollback`` brings that release back."""
    rps: OidcChannels | None = None
    """The OpenID Connect channels, while the scenario runs."""

    @property
    def components(self) -> list[Component]:
        return [*self.mobiles, *self.portals, *self.adapters]

    def stop(self) -> None:
        """Every component, then every node, each group stopped at once (a graceful stop may
        wait for requests under way: one after another, they added up to a minute)."""
        for group in (self.components, self.nodes):
            with ThreadPoolExecutor(max_workers=max(1, len(group))) as pool:
                list(pool.map(lambda host: host.stop(), group))


HOSTS = (
    ("web-1", "portal"),
    ("web-2", "portal"),
    ("dmz-1", "mobile"),
    ("dmz-2", "mobile"),
    ("idp-1", "adapter"),
)
LEAN_HOSTS = HOSTS[:2]
"""The portal hosts alone: what the OpenID Connect channels need (with the nodes). Without
mobile hosts there is no push channel and no app; without the adapter host no LemonLDAP::NG,
forward-auth or browser channel."""


def install(
    work: Path,
    node_names: tuple[str, ...] = NODE_NAMES,
    versions: tuple[str, str] = (A, B),
    hosts: tuple[tuple[str, str], ...] = HOSTS,
) -> Deployment:
    """Every host installed from the first release's offline bundle (A by default; upgraded to
    the second, B), nothing started."""
    wheels = work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    bundle_a, bundle_b = make_bundle(wheels, versions[0]), make_bundle(wheels, versions[1])
    nodes = install_nodes(work, bundle_a, node_names)  # offline, as the other hosts
    parts: list[Component] = []
    for name, kind in hosts:
        where = work / name
        c = Component(name, kind, where / "root", where / "install.toml", free_port())
        run(
            OPENMFA,
            "install",
            "--root",
            str(c.root),
            "--from-bundle",
            str(bundle_a),
            "--components",
            kind,
            "--record",
            str(c.record),
        )
        parts.append(c)
    return Deployment(
        nodes,
        [c for c in parts if c.kind == "portal"],
        [c for c in parts if c.kind == "mobile"],
        [c for c in parts if c.kind == "adapter"],
        bundle_a,
        bundle_b,
        work,
        oidc=versions[0] != OLD,
    )


def timed(node: Node, *args: str) -> str:
    """``openmfa ARGS`` on ``node``'s release, each line of its output (and of its errors)
    marked with the time it came: a failed sign-in's time then finds its step."""
    cmd = [str(node.root / "current" / "venv" / "bin" / "openmfa"), *args]
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(f"{time.strftime('%H:%M:%S')} {line.rstrip()}")
        rc = proc.wait(timeout=900)
    out = "\n".join(lines) + "\n"
    assert rc == 0, (cmd, out)
    return out


@dataclass
class Outcome:
    output: str
    seconds: float
    load: DeploymentLoad
    then_output: str = ""
    balancer: list[str] = field(default_factory=list)

    def report(self) -> str:
        channels = self.load.channels.values()
        lines = [c.line() for c in channels]
        lines += [f"slowest {c.name}: {c.slowest}" for c in channels if c.name != "guard"]
        return "\n".join([*lines, f"upgrade took {self.seconds:.0f} s"])


def upgrade_under_load(
    d: Deployment, *, then: Callable[[list[str]], str] | None = None, hold: bool = True
) -> Outcome:
    """Start the deployment on release A, load every channel, `openmfa farm upgrade` to B on
    the master (with ``hold``: not finalized), then ``then`` (given the load-balancer options)
    under the same load."""
    if not d.adapters:
        return _upgrade_under_load(d, None, then, hold)
    with lemonldap() as idp:
        d.idp = idp
        return _upgrade_under_load(d, idp, then, hold)


def _upgrade_under_load(
    d: Deployment, idp: Idp | None, then: Callable[[list[str]], str] | None, hold: bool
) -> Outcome:
    work = d.work
    ports = {"openmfa_sdk": free_port(), "portal": free_port(), "mobile": free_port()}
    sdk_url = f"http://127.0.0.1:{ports['openmfa_sdk']}"
    mobile_url = f"http://127.0.0.1:{ports['mobile']}/mobile"
    portal_url = f"http://127.0.0.1:{ports['portal']}/portal"
    auth_url = f"http://{AUTH_HOST}:{ports['portal']}/portal"  # the same, by its public name
    nginx_port, site_port = free_port(), free_port()
    web = work / "idp-1-nginx"  # the adapter host's nginx
    (web / "snippets").mkdir(parents=True)
    sites = NGINX_SITES.format(folder=web, port=nginx_port, site=site_port)
    nginx_conf(web, sites)
    cache = Path(tempfile.mkdtemp(prefix="openmfa-nginx-cache-"))  # nginx's workers (nobody)
    cache.chmod(0o755)  # keep signed-in answers there: outside pytest's root-only folders
    for n in d.nodes:
        cfg = n.var / "server.toml"
        cfg.write_text(
            cfg.read_text()
            + f'\n[mobile]\npublic_url = "{mobile_url}"\nmin_gap_seconds = 0.0\n'
            + (f'\n[oidc]\nissuer = "{portal_url}"\n' if d.oidc else "")
        )
    a = d.nodes[0]
    a.start()
    out = a.cli("farm", "init", "--url", a.url)
    token = re.search(r"(omfa-join-\S+)", out).group(1)  # type: ignore[union-attr]
    for n in d.nodes[1:]:
        n.cli("farm", "join", a.url, "--token", token, "--url", n.url)
        n.start()

    def key(name: str, scope: str) -> str:
        found = re.search(r"(omfa_\S+)", a.cli("apikey", "create", name, "--scope", scope))
        assert found
        return found.group(1)

    d.admin = admin = key("deploy-admin", "admin")
    adapter = key("gateway", "adapter")
    keys = {"portal": key("web", "portal"), "mobile": key("dmz", "mobile")}
    keys["adapter"] = key("idp", "adapter")
    session_key, forward_key = secrets.token_hex(32), secrets.token_hex(32)
    a.cli("radius", "client", "add", "gw", "--address", "127.0.0.1/32", "--secret", RADIUS_SECRET)
    a.cli("radius", "client", "add", "vpn", "--address", f"{VPN_ADDRESS}/32",
          "--secret", RADIUS_SECRET, "--primary", "local")  # fmt: skip
    llng_seeds: dict[str, bytes] = {}
    with httpx.Client(base_url=a.url, headers={"authorization": f"Bearer {admin}"}) as api:
        for i in range(USERS):
            name = f"user{i:03d}"
            secret = secrets.token_bytes(20)
            r = api.post("/v1/users", json={"name": name, "email": f"{name}@example.org"})
            assert r.status_code == 201, r.text
            r = api.post(
                f"/v1/users/{name}/methods",
                json={"kind": "totp", "secret": base64.b32encode(secret).decode()},
            )
            assert r.status_code == 201, r.text
            d.seeds[name] = secret
        for name in LLNG_USERS:  # LemonLDAP::NG's people, with a TOTP method here
            secret = secrets.token_bytes(20)
            assert api.post("/v1/users", json={"name": name}).status_code == 201
            r = api.post(
                f"/v1/users/{name}/methods",
                json={"kind": "totp", "secret": base64.b32encode(secret).decode()},
            )
            assert r.status_code == 201, r.text
            llng_seeds[name] = secret
        assert api.post("/v1/users", json={"name": "pia"}).status_code == 201
        assert api.post("/v1/users", json={"name": "pam"}).status_code == 201  # the app's
        assert api.post("/v1/users", json={"name": "nomfa"}).status_code == 201
        oidc_seeds, eam_seeds = people(api)
    portal_users = [f"user{i:03d}" for i in range(PORTAL_USERS)]
    vpn_users = [f"user{i:03d}" for i in range(PORTAL_USERS, PORTAL_USERS + CHALLENGE_USERS)]
    for name in [*portal_users, *vpn_users, *oidc_seeds]:
        subprocess.run(
            [str(a.root / "current" / "venv" / "bin" / "openmfa"), "user", "set-password", name,
             "--password-stdin", "--data-dir", str(a.var)],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
    backends = {
        "openmfa": [(n.name, n.port) for n in d.nodes],
        "portal": [(c.name, c.port) for c in d.portals],
        "mobile": [(c.name, c.port) for c in d.mobiles],
    }
    rps = d.rps = OidcChannels(portal_url, PASSWORD, oidc_seeds, eam_seeds, d.portals)
    if d.oidc:
        register(a.cli, rps)
    cfg = haproxy_deployment_config(work, ports, backends)
    haproxy_log = (work / "haproxy.log").open("a")
    haproxy = subprocess.Popen(
        ["haproxy", "-f", str(cfg), "-db"], stdout=haproxy_log, stderr=subprocess.STDOUT
    )
    load: DeploymentLoad | None = None
    proxy: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 30
        while not answers(sdk_url + "/readyz"):  # HAProxy's checks found the nodes up
            assert time.monotonic() < deadline, "HAProxy does not reach the nodes"
            time.sleep(0.3)
        # The hosts beside the nodes: configured as an administrator would, joined, started.
        for c in d.components:
            key_file = c.var / f"{c.kind}.key"
            key_file.write_text(keys[c.kind] + "\n")
            key_file.chmod(0o600)
            text = c.config.read_text()
            values = {
                "listen": f'"127.0.0.1:{c.port}"',
                "nodes": f'["{sdk_url}"]  # the SDK behind HAProxy',
                "api_key_file": f'"{c.kind}.key"',
            }
            if c.kind == "adapter":  # LemonLDAP::NG calls the SDK through HAProxy
                assert idp is not None
                values = {
                    "node_url": f'"{sdk_url}"  # the SDK behind HAProxy',
                    "api_key_file": '"adapter.key"',
                    "ini": f'"{idp.folder}/lemonldap-ng.ini"',
                    "canary": """'$uid eq "dwho"'  # dwho tries each new registration first""",
                    "canary_seconds": "3",
                    "grace_seconds": "3",
                    # nginx in front of a site, asking the portal hosts themselves
                    "dir": f'"{web}/snippets"',
                    "portals": json.dumps([f"127.0.0.1:{p.port}" for p in d.portals]),
                    "nginx": json.dumps(["nginx", "-p", str(web), "-c", str(web / "nginx.conf")]),
                    "cache_dir": f'"{cache}/auth"',
                }
            if c.kind == "portal":
                values["attempts_per_minute"] = "600  # every test visitor comes from 127.0.0.1"
                values["session_key_file"] = '"session.key"  # the same on every portal host'
                (c.var / "session.key").write_text(session_key + "\n")
                (c.var / "session.key").chmod(0o600)
                values["enabled"] = "true  # forward-auth, for the adapter host's nginx"
                values["cookie_domain"] = '"example.localhost"'
                values["public_url"] = f'"{auth_url}"'
                (c.var / "forward-auth.key").write_text(forward_key + "\n")
                (c.var / "forward-auth.key").chmod(0o600)
            for k, v in values.items():
                text, found = re.subn(rf"^{k} = .*$", f"{k} = {v}", text, count=1, flags=re.M)
                assert found == 1, (c.config, k)
            c.config.write_text(text)
            if c.kind == "adapter":
                shown = c.openmfa("adapter", "register", "lemonldap", "--config", str(c.config))
                assert "second factor required: yes" in shown, shown
                shown = c.openmfa("adapter", "register", "nginx", "--config", str(c.config))
                assert "127.0.0.1:" in shown, shown
                proxy = nginx(web, sites)
            said = c.openmfa(
                "farm", "join-component", "--kind", c.kind, "--config", str(c.config),
                "--name", c.name,
            )  # fmt: skip
            assert "is in the farm's inventory" in said, said
            c.start()

        deadline = time.monotonic() + 60
        while True:  # HAProxy up, every node replicated, every component reporting
            status = json.loads(a.cli("farm", "status", "--json"))
            healthy = all(n["lag"] == 0 and n["health"] == "ok" for n in status["nodes"])
            reporting = {c["name"] for c in status["components"] if c["health"] == "ok"}
            urls = [sdk_url + "/readyz", portal_url + "/healthz"]
            urls += [mobile_url + "/healthz"] if d.mobiles else []
            lb_up = all(answers(u) for u in urls)
            if healthy and reporting == {c.name for c in d.components} and lb_up:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        deadline = time.monotonic() + 30  # LemonLDAP::NG reads its configuration again
        while idp is not None and idp.sign_in(LLNG_USERS[0], None)[0] != "/openmfa2fcheck":
            assert time.monotonic() < deadline, "LemonLDAP::NG does not ask for OpenMFA"
            time.sleep(0.5)
        watching: Watching | None = None
        if d.mobiles:
            code = json.loads(a.cli("device", "activate", "pia", "--json"))
            assert code["url"] == mobile_url, code
            phone = Phone(work / "pia-phone.json")
            assert "activated device" in phone.run("activate", code["url"], code["code"]).stdout
            watching = phone.watch()
        base = Load(
            sdk_url,
            adapter,
            [n.radius_port for n in d.nodes],
            {k: v for k, v in d.seeds.items() if k not in portal_users + vpn_users},
        )
        load = DeploymentLoad(
            base,
            sdk_url,
            admin,
            portal_url,
            {k: d.seeds[k] for k in portal_users},
            watching,
            idp,
            llng_seeds,
            {k: d.seeds[k] for k in vpn_users},
            site=f"http://{SITE_HOST}:{nginx_port}",
            auth=auth_url,
            resolve=[
                f"{SITE_HOST}:{nginx_port}:127.0.0.1",
                f"{AUTH_HOST}:{ports['portal']}:127.0.0.1",
            ],
            jars=work,
            app=AppPhone(sdk_url, admin, mobile_url + "/app/", d.mobiles, d.nodes)
            if d.mobiles
            else None,
            oidc=rps,
        )
        workers = load.workers()
        for w in workers:
            w.start()
        time.sleep(5)
        started = time.monotonic()
        lb = ["--lb", "haproxy", "--haproxy-socket", str(work / "haproxy.sock")]
        lb += ["--haproxy-backend", "openmfa", "--haproxy-portal-backend", "portal"]
        lb += ["--haproxy-mobile-backend", "mobile"]
        then_out = ""
        try:
            out = timed(
                a, "farm", "upgrade", "--bundle", str(d.bundle_b), *lb,
                *(["--hold"] if hold else []), "--data-dir", str(a.var),
            )  # fmt: skip
            seconds = time.monotonic() - started
            if then is not None:
                then_out = then(lb)
            time.sleep(5)
        finally:
            load.stop.set()
            for w in workers:
                w.join(timeout=90)
            load.close()
            if watching is not None:
                watching.close()
            rps.close()
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)
        haproxy_log.close()
        if proxy is not None:
            stop(proxy)
        shutil.rmtree(cache, ignore_errors=True)
    events = [
        line
        for line in (work / "haproxy.log").read_text().splitlines()
        if " is DOWN" in line or " is UP" in line or "check for server" in line
    ]
    assert load is not None
    return Outcome(out, seconds, load, then_out, events)
