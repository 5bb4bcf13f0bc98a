"""Where I am signed in, in Chromium against real node and portal processes: one person signed
in from two browsers (a desktop, and a 320 px phone); each lists both, its own marked "This
browser"; the desktop ends the phone's session, and the phone's next page is the sign-in. The
recent sign-ins say from where (address and browser). The pages are judged by axe-core in
English and Dutch, and fit the phone's screen."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from .browser import OUTPUT as OUTPUT_ROOT
from .browser import PASSWORD, Visitor, launch, playwright_api
from .helpers import OPENMFA, cli, free_port, init, oathtool, server, start_service, stop, wait_for

OUTPUT = OUTPUT_ROOT / "portal-sessions"
DESK_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"
PHONE_SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def portal_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("portal-sessions")
    dd = base / "node"
    init(dd)
    cli(dd, "user", "add", "ada")
    subprocess.run(
        [OPENMFA, "user", "set-password", "ada", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    # Two apps: a code is taken once, so each browser signs in with its own.
    for seed, label in ((DESK_SEED, "Desk app"), (PHONE_SEED, "Phone app")):
        cli(dd, "method", "add", "ada", "totp", "--secret", seed, "--no-qr", "--label", label)
    key = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    folder = base / "portal"
    folder.mkdir()
    (folder / "portal.key").write_text(key + "\n")
    (folder / "portal.key").chmod(0o600)
    port = free_port()
    (folder / "portal.toml").write_text(
        f'[portal]\nlisten = "127.0.0.1:{port}"\napi_key_file = "portal.key"\n'
        "attempts_per_minute = 1000\n"
    )
    with server(dd) as node:
        with (folder / "portal.toml").open("a") as f:
            f.write(f'nodes = ["{node.url}"]\n')
        url = f"http://127.0.0.1:{port}/portal"
        argv = ["portal", "serve", "--config", str(folder / "portal.toml")]
        proc = start_service(argv, url + "/healthz", folder / "portal.log")
        try:
            yield url
        finally:
            stop(proc)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with launch() as browser:
        yield browser


def test_one_browser_ends_the_other_and_it_is_sent_to_sign_in(
    portal_url: str, chromium: Any
) -> None:
    folder = OUTPUT / "ends-the-other"
    shutil.rmtree(folder, ignore_errors=True)
    for name in ("desk", "phone"):
        (folder / name).mkdir(parents=True)
    desk = Visitor(chromium, folder / "desk")
    phone = Visitor(chromium, folder / "phone", phone=(320, 640))
    try:
        desk.sign_in(portal_url, "ada")
        desk.code(oathtool("--totp", "-b", DESK_SEED))
        desk.at("/portal/methods")
        phone.sign_in(portal_url, "ada")
        phone.code(oathtool("--totp", "-b", PHONE_SEED))
        phone.at("/portal/methods")

        phone.page.goto(portal_url + "/sessions")
        phone.fits("phone-sessions")
        rows = phone.page.locator("tbody tr")
        playwright_api.expect(rows).to_have_count(2)
        playwright_api.expect(phone.page.locator("tr.current")).to_contain_text("This browser")
        phone.page.goto(portal_url + "/sign-ins")  # from where, on a 320 px screen
        playwright_api.expect(phone.page.locator("tbody tr").first).to_contain_text("127.0.0.1")
        phone.fits("phone-sign-ins")

        desk.page.get_by_role("link", name="Where you are signed in").click()
        desk.at("/portal/sessions")
        desk.see("sessions")
        playwright_api.expect(desk.page.locator("tbody tr")).to_have_count(2)
        current = desk.page.locator("tr.current")
        playwright_api.expect(current).to_contain_text("This browser")
        playwright_api.expect(current).to_contain_text("Chrome on Linux")
        other = desk.page.locator("tbody tr:not(.current)")
        playwright_api.expect(other).to_contain_text("127.0.0.1")
        assert current.get_by_role("button").count() == 0  # this browser: sign out instead
        other.get_by_role("button", name="End").click()
        desk.notice_says("That session was ended")
        desk.see("session-ended")
        playwright_api.expect(desk.page.locator("tbody tr")).to_have_count(1)

        def sent_to_sign_in() -> bool:
            phone.page.goto(portal_url + "/methods")
            return bool(phone.page.url.endswith("/portal/sign-in"))

        wait_for(sent_to_sign_in, "the phone sent to sign-in", seconds=30)
        phone.fits("phone-signed-out")
        desk.page.goto(portal_url + "/methods")  # the desk stays signed in
        desk.at("/portal/methods")

        # Recent sign-ins say from where: the address and the browser, beside the channel.
        desk.page.goto(portal_url + "/sign-ins")
        newest = desk.page.locator("tbody tr").first
        playwright_api.expect(newest).to_contain_text("This portal")
        playwright_api.expect(newest).to_contain_text("127.0.0.1")
        playwright_api.expect(newest).to_contain_text("Chrome on Linux")
        desk.see("sign-ins")

        desk.page.goto(portal_url + "/sessions")
        desk.label("Language").select_option("nl")
        desk.button("Change language").click()
        playwright_api.expect(desk.page.locator("h1")).to_have_text("Waar u bent aangemeld")
        playwright_api.expect(desk.page.locator("tr.current")).to_contain_text("Deze browser")
        desk.see("sessions-nl")
        desk.page.goto(portal_url + "/sign-ins")
        newest = desk.page.locator("tbody tr").first
        playwright_api.expect(newest).to_contain_text("Chrome op Linux")
        playwright_api.expect(newest.locator("td[data-label=Adres]")).to_have_text("127.0.0.1")
        desk.see("sign-ins-nl")
    finally:
        desk.close()
        phone.close()
    assert desk.errors == [] and phone.errors == [], (desk.errors, phone.errors)
