"""A person's browser for the end-to-end tests: Debian's Chromium driven by Playwright.
``Visitor`` is one person's tab: every page it looks at is screenshot and judged by axe-core,
a phone's pages must fit its screen, and console errors are kept (a test fails on any)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "scripts" / "web-tools" / "node_modules" / "axe-core" / "axe.min.js"
OUTPUT = Path(os.environ.get("OPENMFA_TEST_OUTPUT", ROOT / "test-output"))
"""Where screenshots go (a folder per test file's subject: portal/, app/)."""
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "a long portal password"


@contextmanager
def launch() -> Iterator[Any]:
    """Chromium, headless (the tests' one browser; each person gets a context of it)."""
    if not Path(CHROMIUM).exists() or not AXE.exists():
        pytest.fail("run scripts/system-deps.sh: it installs chromium, zbar-tools and axe-core")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class Visitor:
    """One person's browser tab: every page looked at is screenshot and judged by axe-core;
    console errors and page errors are kept (the test fails on any)."""

    def __init__(
        self,
        browser: Any,
        folder: Path,
        locale: str = "en-GB",
        phone: tuple[int, int] | None = None,
        init_script: str = "",
        **options: Any,
    ) -> None:
        """``phone``: a phone's screen (width, height in CSS pixels), touch and all;
        ``init_script`` runs in every page before the page's own scripts; ``options`` go to
        the browser context (``permissions``, ``service_workers``, ...)."""
        self.phone = phone
        if phone is not None:
            options.update(
                viewport={"width": phone[0], "height": phone[1]},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
            )
        self.context = browser.new_context(locale=locale, **options)
        if init_script:
            self.context.add_init_script(init_script)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.folder = folder
        self.errors: list[str] = []
        self.expected: list[str] = []
        """Console errors a test provokes on purpose (a refused form's status)."""
        self.shots = 0
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _console(self, message: Any) -> None:
        if message.type == "error" and not any(e in message.text for e in self.expected):
            self.errors.append(message.text)

    def see(self, name: str) -> None:
        """This page: a screenshot, and no serious or critical accessibility violation."""
        self.page.wait_for_load_state("load")
        self.shots += 1
        self.page.screenshot(path=str(self.folder / f"{self.shots:02d}-{name}.png"), full_page=True)
        if not self.page.evaluate("() => typeof window.axe === 'object'"):
            self.page.evaluate(AXE.read_text())  # once per document (an app's screens share one)
        found = self.page.evaluate(
            """async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a',
                 'wcag21aa', 'wcag22aa', 'best-practice']})).violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ': ' + v.help + ' ' + v.nodes.map(n => n.html).join(' | '))"""
        )
        assert found == [], f"{name}: {found}"

    def fits(self, name: str) -> None:
        """This page, as ``see``, and nothing wider than the phone's screen: no sideways
        scrolling (and no zooming out, which a phone's browser does to show a page wider than
        itself: the window then is wider than the screen)."""
        assert self.phone is not None
        self.see(name)
        wide = self.page.evaluate(
            """() => ({page: document.scrollingElement.scrollWidth, window: window.innerWidth,
                       over: [...document.querySelectorAll('body *')]
                         .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
                         .map(e => e.outerHTML.slice(0, 60))})"""
        )
        width = self.phone[0]
        assert wide["page"] <= wide["window"] == width, f"{name}: wider than the screen: {wide}"

    def label(self, text: str) -> Any:
        return self.page.get_by_label(text, exact=True)

    def button(self, text: str) -> Any:
        return self.page.get_by_role("button", name=text, exact=True)

    def sign_in(self, url: str, user: str, password: str = PASSWORD) -> None:
        self.page.goto(url + "/")
        self.see("sign-in")
        self.label("User name").fill(user)
        self.label("Password").fill(password)
        self.button("Sign in").click()

    def code(self, code: str, button: str = "Verify") -> None:
        self.label("Verification code").fill(code)
        self.button(button).click()

    def alert_says(self, text: str) -> None:
        """The page's alert says ``text`` (waited for: the page may still be loading)."""
        playwright_api.expect(self.page.get_by_role("alert")).to_contain_text(text)

    def notice_says(self, text: str) -> None:
        playwright_api.expect(self.page.get_by_role("status").first).to_contain_text(text)

    def at(self, path: str) -> None:
        """The browser is at ``path`` (waited for)."""
        playwright_api.expect(self.page).to_have_url(re.compile(".*" + re.escape(path) + "$"))

    def qr(self, name: str) -> str:
        """What the page's QR code image says, read by zbarimg."""
        src = self.page.get_by_role("img", name=name).get_attribute("src")
        assert src.startswith("data:image/png;base64,")
        png = self.folder / f"qr-{self.shots:02d}.png"
        png.write_bytes(base64.b64decode(src.split(",", 1)[1]))
        out = subprocess.run(
            ["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()

    def close(self) -> None:
        self.context.close()
