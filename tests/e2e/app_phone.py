"""The OpenMFA Authenticator web app as a channel of the whole-deployment scenario
(tests/e2e/deployment_scenario.py): a person's phone (Debian's Chromium, a phone's screen,
touch) with the app open at the mobile backend (HAProxy), approving SDK pushes for "pam" by
tapping the number on its keypad, beside the command-line phone of the "push" channel.

Release A may not serve the app (0.3.x does not): the phone is activated as soon as every
mobile host serves ``/mobile/app/`` — at the start when A does, otherwise once the upgrade has
moved the mobile hosts to B. When they are rolled back to a release without the app, the app's
service worker keeps its shell: the open page, and a reload of it, keep approving over device
protocol v1. Each approval is tallied by the releases the mobile hosts and the nodes ran while
it was made (probed before and after), so a test can tell "after the rollback" apart.

One thread drives the page, with its own Playwright (its sync API is not thread-safe)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from openmfa.sdk.client import SdkClient

from .browser import CHROMIUM

USER = "pam"
SCREEN = (390, 844)
PAUSE = 1.0
"""Seconds between two app pushes (as the push channel's 0.5: a person, not a benchmark)."""
MIN_GAP = 2.0
"""The node's default ``[mobile] min_gap_seconds``: never two pushes for pam sooner (the
scenario sets it to 0, the pacing keeps to the default anyway). One push is open at a time
(each waits for its outcome): well within ``open_per_user`` (3)."""
WAIT_MS = 30_000
"""The most one step (the request reaching the app, a screen appearing) may take."""


class Host(Protocol):
    """A mobile-service host of the scenario (its own address, beside HAProxy)."""

    @property
    def base(self) -> str: ...

    def release(self) -> str: ...


class Released(Protocol):
    def release(self) -> str: ...


def _release(host: Released) -> str:
    try:
        return host.release()
    except Exception:  # restarting or drained: not answering just now
        return "?"


@dataclass
class AppPhone:
    sdk_url: str
    admin: str
    app_url: str
    """The app as the phone opens it: the mobile backend's ``…/mobile/app/``."""
    mobiles: Sequence[Host]
    nodes: Sequence[Released]
    page: Any = None
    activated: str = ""
    """When (and on which releases) the phone was activated; "" until then."""
    reloaded: str = ""
    """When the page was reloaded on mobile hosts without the app (its worker's shell)."""
    approved: Counter[str] = field(default_factory=Counter)
    """Accepted approvals by what the hosts ran while each was made (``where``)."""
    errors: list[str] = field(default_factory=list)
    """Uncaught errors in the page (a console error is no fault: hosts restart under it)."""
    last_push: float = 0.0

    def run(self, stop: threading.Event, count: Callable[[str, bool, float, str], None]) -> None:
        """The channel's thread: Chromium on a phone's screen, one page; a step at a time
        until ``stop`` (bounded in time as the scenario's other workers)."""
        from playwright import sync_api

        try:
            with sync_api.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    context = browser.new_context(
                        locale="en-GB",
                        viewport={"width": SCREEN[0], "height": SCREEN[1]},
                        is_mobile=True,
                        has_touch=True,
                    )
                    self.page = context.new_page()
                    self.page.set_default_timeout(WAIT_MS)
                    self.page.on("pageerror", lambda e: self.errors.append(str(e)))
                    deadline = time.monotonic() + 1800
                    while not stop.is_set() and time.monotonic() < deadline:
                        stop.wait(PAUSE if self.once(count) else 0.5)
                finally:
                    self.page = None
                    browser.close()
        except Exception as exc:  # Chromium did not start: a failure of the channel
            count("app-push", False, 0.0, f"app-push: {exc!r}")

    def where(self) -> str:
        """What the hosts answering just now run: "mobile <releases>, nodes <releases>" (one
        restarting runs either)."""
        mobile, nodes = ({_release(h) for h in hosts} for hosts in (self.mobiles, self.nodes))
        return f"mobile {_names(mobile)}, nodes {_names(nodes)}"

    def serves_app(self) -> bool:
        """Every mobile host, and HAProxy's backend, serve the app (the service worker's
        install fetches its shell through HAProxy: from either host)."""
        urls = [m.base + "/mobile/app/" for m in self.mobiles] + [self.app_url]
        try:
            return all(httpx.get(u, timeout=5).status_code == 200 for u in urls)
        except httpx.HTTPError:
            return False

    def once(self, count: Callable[[str, bool, float, str], None]) -> bool:
        """Activate once the app is served; then one push approved in the app, counted and
        timed on the channel (the probes of what the hosts run are not timed). Whether a push
        was made (not before the activation: none is counted then)."""
        started = time.monotonic()
        try:
            if not self.activated:
                if self.serves_app():
                    self.activate()
                return False
            if not self.reloaded and not any(_served(m.base) for m in self.mobiles):
                self.reload()
                return False
            time.sleep(max(0.0, self.last_push + MIN_GAP - time.monotonic()))
            before = self.where()
            started = time.monotonic()
            good, why = self.push()
            took = time.monotonic() - started
            after = self.where()
        except Exception as exc:  # a failure of the channel, never hidden
            count("app-push", False, time.monotonic() - started, f"app-push: {exc!r}")
            return True
        count("app-push", good, took, why)
        if good:
            self.approved[before if before == after else "while a host changed"] += 1
        return True

    def activate(self) -> None:
        """As a person does: the link (the portal's QR code; here the SDK's admin call, as
        ``openmfa device activate`` on the master makes it: the master moves during the
        upgrade, the SDK client follows it) opened, Activate pressed; then the service worker
        holds the shell."""
        with SdkClient(self.sdk_url, self.admin, timeout=30) as sdk:
            link = sdk.issue_activation(USER).qr_text
        page = self.page
        page.goto(link)
        self.heading("Activate this phone")
        page.get_by_role("button", name="Activate", exact=True).tap()
        self.heading("Sign-in requests")
        card = page.locator("#accounts .account", has=page.get_by_text(USER, exact=True))
        card.wait_for(state="visible")
        caches = page.evaluate(
            """async () => { await navigator.serviceWorker.ready;
                return (await caches.keys()).filter(k => k.startsWith('openmfa-app-')); }"""
        )
        if not caches:
            raise AssertionError("activated, but the service worker keeps no shell")
        self.activated = f"{time.strftime('%H:%M:%S')} on {self.where()} (shell {caches})"

    def reload(self) -> None:
        """The mobile hosts serve no app any more (rolled back): the page opened again comes
        from the service worker's shell, with pam's account (its keys) still there."""
        self.page.reload()
        self.heading("Sign-in requests")
        card = self.page.locator("#accounts .account", has=self.page.get_by_text(USER, exact=True))
        card.wait_for(state="visible")
        self.reloaded = f"{time.strftime('%H:%M:%S')} on {self.where()}"

    def push(self) -> tuple[bool, str]:
        """An SDK push for pam; in the app: the request in the list, opened, the number tapped
        on the keypad, Approve, "Approved"; the SDK's outcome accepted."""
        page = self.page
        if page.locator("#view-home").is_hidden():  # a step failed before: back to the list
            page.goto(self.app_url)
            self.heading("Sign-in requests")
        with SdkClient(self.sdk_url, self.admin, timeout=30) as sdk:
            t0 = self.last_push = time.monotonic()
            d = sdk.authenticate(USER, push=True)
            if d.pending is None:
                return False, f"app-push: no request opened ({d.reason})"
            rid, number = d.pending.id, d.pending.number or ""
            t1 = time.monotonic()
            try:
                page.locator(f'li.request[data-request="{rid}"] button.open').tap()
                t2 = time.monotonic()
                self.heading("Is this you signing in?")
                keypad = page.get_by_role("group", name="Number keypad")
                for digit in number:
                    keypad.get_by_role("button", name=digit, exact=True).tap()
                page.get_by_role("button", name="Approve", exact=True).tap()
                self.heading("Approved")
                t3 = time.monotonic()
                page.get_by_role("button", name="Done", exact=True).tap()
            except Exception as exc:
                return False, f"app-push {rid}: {self.screen()}: {str(exc).splitlines()[0]}"
            out = sdk.push_outcome(rid, wait=20)
            steps = f"opened {t1 - t0:.1f} s, in the app {t2 - t1:.1f} s"
            steps += f", approved {t3 - t2:.1f} s, outcome {time.monotonic() - t3:.1f} s"
            return out.accepted, f"app-push {rid}: {out.status} ({steps})"

    def heading(self, text: str) -> None:
        self.page.get_by_role("heading", level=1, name=text, exact=True).wait_for(state="visible")

    def screen(self) -> str:
        """What the app shows (for a failure's message): its heading, alert and banner."""
        try:
            return str(
                self.page.evaluate(
                    """() => [...document.querySelectorAll('h1, #alert, #offline')]
                      .filter(e => e.offsetParent !== null && e.textContent.trim())
                      .map(e => e.textContent.trim()).join(' | ')"""
                )
            )
        except Exception as exc:
            return f"(the page: {exc!r})"

    def summary(self) -> str:
        tally = "; ".join(f"{k}: {v}" for k, v in sorted(self.approved.items()))
        return (
            f"app phone ({USER}): activated {self.activated or 'never'}; reloaded on hosts "
            f"without the app {self.reloaded or 'never'}; approved {tally or 'none'}"
        )


def _names(releases: set[str]) -> str:
    return "+".join(sorted(releases - {"?"})) or "?"


def _served(base: str) -> bool:
    try:
        return httpx.get(base + "/mobile/app/", timeout=5).status_code == 200
    except httpx.HTTPError:
        return True  # not answering: not known to be without the app
