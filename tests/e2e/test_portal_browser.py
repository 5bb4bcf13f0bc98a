"""The User Portal in a real browser (issue 13): Debian's Chromium, driven by Playwright, against
real node, mobile service and portal processes. Codes come from oathtool, QR codes are read by
zbarimg, the phone is the reference authenticator; axe-core judges every page's accessibility,
every page's screenshot is saved under test-output/portal/, and a console error fails the test.
Fields are found by their labels, as a person (or a screen reader) finds them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .browser import OUTPUT as OUTPUT_ROOT
from .browser import PASSWORD, ROOT, Visitor, launch, playwright_api
from .helpers import (
    OPENMFA,
    VIRTUAL_AUTHENTICATOR,
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

OUTPUT = OUTPUT_ROOT / "portal"
SEEDS = {
    "ada": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ",
    "ben": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    "cleo": "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U",
    "dan": "ONSWG4TFORXXEZLTMVZXIZLSMVXXK4TB",
    "eve": "KRUGKIDROVUWG2ZAMJZG653OEBTG66BA",
    "gus": "GMZTQNBVGY3DCMRRGQ2DQNJXHAYTCMRT",
    "ivy": "NBSWY3DPEB3W64TMMQQGY2LLMUQGC4TF",
    "jon": "MJQWG23VOAQGG33EMVZSA5DIMF2CA53P",
}
pytestmark = pytest.mark.e2e


@dataclass
class Site:
    dd: Path
    node: Server
    portal: str
    themed: str
    """A second portal, on the custom theme "Corporate", that allows 3 attempts a minute."""
    procs: list[subprocess.Popen[str]] = field(default_factory=list)


def _portal(
    folder: Path, key: str, node_url: str, procs: list[subprocess.Popen[str]], extra: str = ""
) -> str:
    """A portal host: its own folder with portal.toml and the key file (mode 0600)."""
    folder.mkdir()
    (folder / "portal.key").write_text(key + "\n")
    (folder / "portal.key").chmod(0o600)
    port = free_port()
    config = folder / "portal.toml"
    config.write_text(
        f'[portal]\nlisten = "127.0.0.1:{port}"\nnodes = ["{node_url}"]\n'
        f'api_key_file = "portal.key"\n{extra}'
    )
    url = f"http://127.0.0.1:{port}/portal"
    argv = ["portal", "serve", "--config", str(config)]
    procs.append(start_service(argv, url + "/healthz", folder / "portal.log"))
    return url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("portal-site")
    dd = base / "node"
    init(dd)
    port = free_port()
    with (dd / "server.toml").open("a") as f:
        f.write(f'\n[mobile]\nenabled = true\npublic_url = "http://127.0.0.1:{port}/mobile"\n')
        f.write('[portal]\nself_enroll = true\nbypass_seconds = 300\nphone_region = "NL"\n')
    for user, seed in SEEDS.items():
        cli(dd, "user", "add", user)
        subprocess.run(
            [OPENMFA, "user", "set-password", user,
             "--password-stdin", "--data-dir", str(dd)],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        cli(dd, "method", "add", user, "totp", "--secret", seed, "--no-qr", "--label", "Phone app")
    cli(dd, "user", "add", "hal")  # a password, no method yet
    subprocess.run(
        [OPENMFA, "user", "set-password", "hal", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    key = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    # A custom theme: the Default copied and changed, as an administrator would.
    themes = base / "themes"
    shutil.copytree(ROOT / "src" / "openmfa" / "themes" / "Default", themes / "Corporate")
    css = themes / "Corporate" / "static" / "theme.css"
    css.write_text(css.read_text().replace("--omfa-accent: #1f5fbf", "--omfa-accent: #6a1b9a"))
    page = themes / "Corporate" / "templates" / "sign_in.html"
    page.write_text(page.read_text().replace("{% block main %}", "{% block main %}\n<p>Corp</p>"))
    procs: list[subprocess.Popen[str]] = []
    with server(dd, port=port) as node:
        try:
            # Every test signs in from 127.0.0.1: this portal's limit is set out of the way.
            portal = _portal(base / "portal", key, node.url, procs, "attempts_per_minute = 1000\n")
            themed = _portal(
                base / "themed", key, node.url, procs,
                f'theme = "Corporate"\nthemes_dir = "{themes}"\nattempts_per_minute = 3\n',
            )  # fmt: skip
            yield Site(dd, node, portal, themed, procs)
        finally:
            for proc in procs:
                stop(proc)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with launch() as browser:
        yield browser


@pytest.fixture
def visitor(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Visitor]:
    folder = OUTPUT / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    v = Visitor(chromium, folder)
    try:
        yield v
    finally:
        v.close()
    assert v.errors == [], f"console errors: {v.errors}"


def totp(user: str) -> str:
    return oathtool("--totp", "-b", SEEDS[user])


def next_totp(seed: str, used: str) -> str:
    """A code of ``seed`` other than ``used`` (the next 30-second step: a code is taken once)."""
    found: list[str] = []
    wait_for(lambda: found.append(oathtool("--totp", "-b", seed)) or found[-1] != used, "next")
    return found[-1]


def methods_table(v: Visitor) -> list[str]:
    return texts(v, "tbody tr td:first-child")


def texts(v: Visitor, selector: str) -> list[str]:
    """The texts of what ``selector`` finds, once the page shows the first of them."""
    found = v.page.locator(selector)
    found.first.wait_for()
    return [str(t) for t in found.all_inner_texts()]


def test_sign_in_add_an_authenticator_app_sign_out_and_in_with_it(
    site: Site, visitor: Visitor
) -> None:
    v = visitor
    v.sign_in(site.portal, "ada", "not the password")
    v.alert_says("user name or password is not right")
    v.see("sign-in-refused")
    v.label("Password").fill(PASSWORD)
    v.button("Sign in").click()
    v.at("/portal/second-factor")
    v.see("second-factor")
    assert v.label("Verification code").get_attribute("autocomplete") == "one-time-code"
    v.code("000000")
    v.alert_says("code is not right")
    first = totp("ada")
    v.code(first)
    v.at("/portal/methods")
    v.see("methods")
    assert methods_table(v) == ["Phone app"]

    v.button("Add an authenticator app").click()
    v.see("add-app")
    secret = v.page.locator("#secret").inner_text().replace(" ", "")
    uri = v.qr("QR code for your authenticator app")
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri, uri
    v.code("123456", "Add the app")
    v.alert_says("not the code your app shows")
    v.see("add-app-wrong-code")
    v.code(oathtool("--totp", "-b", secret), "Add the app")
    v.notice_says("authenticator app was added")
    v.see("app-added")
    assert sorted(methods_table(v)) == ["Authenticator app", "Phone app"]
    assert secret not in v.page.content()  # never shown again

    v.button("Sign out").click()
    v.notice_says("You are signed out")
    v.see("signed-out")
    v.page.goto(site.portal + "/methods")  # signed out: the pages are closed
    v.at("/portal/sign-in")
    v.sign_in(site.portal, "ada")
    v.code(oathtool("--totp", "-b", secret))  # the new app's code
    v.at("/portal/methods")


def test_backup_codes_shown_once_and_a_removal_asks_who_it_is(site: Site, visitor: Visitor) -> None:
    v = visitor
    v.sign_in(site.portal, "ben")
    v.code(totp("ben"))
    v.button("New backup codes").click()
    v.see("backup-codes")
    codes = texts(v, "#backup-codes li")
    assert len(codes) == 10 and len(set(codes)) == 10
    v.page.get_by_role("link", name="I have saved them").click()
    assert any(re.fullmatch(r"backup codes \(10 left\)", t, re.I) for t in methods_table(v))
    v.page.goto(site.portal + "/backup-codes")  # shown once: not again
    v.at("/portal/methods")
    # Again: the old codes stop working.
    v.button("New backup codes").click()
    fresh = texts(v, "#backup-codes li")
    assert not set(fresh) & set(codes)
    v.button("Sign out").click()
    v.sign_in(site.portal, "ben")
    v.code(codes[0])
    v.alert_says("code is not right")
    v.code(fresh[0])
    v.at("/portal/methods")
    assert any("(9 left)" in t for t in methods_table(v))

    # Removing a method asks for the password and a second factor first, then removes it.
    v.page.get_by_role("button", name="Remove Backup codes").click()
    v.at("/portal/confirm")
    v.notice_says("first confirm it is you")
    v.see("confirm")
    assert v.label("User name").input_value() == "ben"
    v.label("Password").fill("wrong")
    v.button("Continue").click()
    v.alert_says("not right")
    v.label("Password").fill(PASSWORD)
    v.button("Continue").click()
    v.code(fresh[1])
    v.notice_says("was removed")
    assert methods_table(v) == ["Phone app"]


def test_the_mobile_app_activated_from_the_page_then_a_push_sign_in(
    site: Site, visitor: Visitor, chromium: Any, tmp_path: Path
) -> None:
    v = visitor
    v.sign_in(site.portal, "cleo")
    v.code(totp("cleo"))
    v.button("Activate the mobile app").click()
    v.see("activate-mobile-app")
    url = v.page.locator("#activation-url").inner_text()
    code = v.page.locator("#activation-code").inner_text()
    qr = v.qr("QR code to activate the mobile app")
    assert qr == f"{url}/app/#activate={code}", qr
    phone = Phone(tmp_path / "cleo.json")
    phone.run("activate", url, code)
    # The page notices by itself that the app is activated.
    v.page.wait_for_url(re.compile(r".*/portal/methods$"), timeout=60_000)
    v.notice_says("mobile app is activated")
    assert "Mobile app" in v.page.locator("tbody").inner_text()
    # The mobile app as the default method: the next sign-in offers the push first.
    phone_row = v.page.locator("tbody tr", has_text="Mobile app")
    phone_row.get_by_role("button", name=re.compile("^Make default: ")).click()
    v.notice_says("default sign-in method was changed")
    assert "Default" in v.page.locator("tbody tr", has_text="Mobile app").inner_text()
    v.see("mobile-app-the-default")
    v.button("Sign out").click()

    v.sign_in(site.portal, "cleo")
    v.at("/portal/second-factor")
    first = v.page.locator("main form button").first
    playwright_api.expect(first).to_have_text("Send a push to my phone")
    v.see("second-step-push-first")
    v.button("Send a push to my phone").click()
    v.at("/portal/push")
    live = v.page.locator("#push-number")
    assert live.get_attribute("aria-live") == "polite"
    number = v.page.locator(".number").inner_text()
    v.see("push-number")
    (request,) = phone.pending(wait=20)
    phone.run("approve", str(request["id"]), "--number", number)
    # The page moves on by itself once the phone approved.
    v.page.wait_for_url(re.compile(r".*/portal/methods$"), timeout=60_000)
    v.see("signed-in-by-push")
    v.page.get_by_role("link", name="Recent sign-ins").click()
    v.see("sign-ins")
    rows = texts(v, "tbody tr")
    assert "Approved on the phone" in rows[0] and "Push sent to the phone" in rows[1]
    assert any("Signed in" in r for r in rows) and any("Password accepted" in r for r in rows)
    # Signed in in another browser too; "sign out everywhere" here ends that session.
    other = Visitor(chromium, v.folder)
    try:
        other.sign_in(site.portal, "cleo")
        other.button("Send a push to my phone").click()
        number = other.page.locator(".number").inner_text()
        (request,) = phone.pending(wait=20)
        phone.run("approve", str(request["id"]), "--number", number)
        other.page.wait_for_url(re.compile(r".*/portal/methods$"), timeout=60_000)
        v.button("Sign out everywhere").click()
        v.notice_says("signed out everywhere")
        other.page.goto(site.portal + "/methods")
        other.at("/portal/sign-in")
        other.notice_says("session has ended")
        assert other.errors == []
    finally:
        other.close()


def test_policy_rules_decide_what_the_second_step_offers(
    site: Site, visitor: Visitor, tmp_path: Path
) -> None:
    """An administrator (group ``admins``, whose rule allows a passkey or a numbered push) is
    offered the push alone although they have an authenticator app and backup codes too; the
    office's network (a rule that skips) signs them in with the password alone."""
    dd, v = site.dd, visitor
    cli(dd, "user", "add", "kim")
    subprocess.run(
        [OPENMFA, "user", "set-password", "kim", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    cli(
        dd,
        "method",
        "add",
        "kim",
        "totp",
        "--secret",
        SEEDS["jon"],
        "--no-qr",
        "--label",
        "Phone app",
    )
    cli(dd, "method", "add", "kim", "backup-codes")
    out = cli(dd, "device", "activate", "kim").stdout
    code = re.search(r"activation code: (\S+)", out)
    url = re.search(r"activation url: +(\S+)", out)
    assert code and url, out
    phone = Phone(tmp_path / "kim.json")
    phone.run("activate", url.group(1), code.group(1))
    cli(dd, "user", "group", "add", "kim", "admins")
    cli(dd, "policy", "add", "admins-strong", "--group", "admins", "--methods", "passkey,push",
        "--numbered-push")  # fmt: skip
    try:
        v.sign_in(site.portal, "kim")
        v.at("/portal/second-factor")
        first = v.page.locator("main form button").first
        playwright_api.expect(first).to_have_text("Send a push to my phone")
        assert v.page.locator("#code").count() == 0  # no code form: no app, no backup codes
        main = v.page.locator("main").inner_text()
        assert "Phone app" not in main and "Backup codes" not in main
        v.see("policy-push-only")
        v.button("Send a push to my phone").click()
        number = v.page.locator(".number").inner_text()
        (request,) = phone.pending(wait=20)
        phone.run("approve", str(request["id"]), "--number", number)
        v.page.wait_for_url(re.compile(r".*/portal/methods$"), timeout=60_000)
        v.button("Sign out").click()
        # From the office's network (this browser's 127.0.0.1): the password alone.
        cli(dd, "policy", "add", "office", "--channel", "portal", "--source", "127.0.0.0/8",
            "--second-factor", "skip", "--position", "1")  # fmt: skip
        v.sign_in(site.portal, "kim")
        v.at("/portal/methods")
        v.see("policy-office-skips")
        rows = [
            json.loads(r) for r in cli(dd, "audit", "--user", "kim", "--json").stdout.splitlines()
        ]
        skipped = [r for r in rows if r["action"] == "authenticate" and r["reason"] == "skipped"]
        assert [r["detail"] for r in skipped] == ["second factor skipped by policy rule office"]
        v.button("Sign out").click()
        # PIN mode: the PIN before the code, in a field of its own; a wrong one is refused.
        cli(dd, "policy", "remove", "office")
        subprocess.run(
            [OPENMFA, "user", "pin", "set", "kim", "--pin-stdin", "--data-dir", str(dd)],
            input="4711\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        cli(dd, "policy", "add", "pin-portal", "--channel", "portal", "--pin", "required",
            "--position", "1")  # fmt: skip
        v.sign_in(site.portal, "kim")
        v.at("/portal/second-factor")
        v.see("policy-pin")
        code = oathtool("--totp", "-b", SEEDS["jon"])
        v.page.locator("#pin-code").fill("1234")
        v.code(code)
        v.alert_says("PIN is not right")
        v.page.locator("#pin-code").fill("4711")
        v.code(oathtool("--totp", "-b", SEEDS["jon"]))  # the first was never looked at
        v.at("/portal/methods")
    finally:
        cli(dd, "policy", "remove", "admins-strong")
        listed = cli(dd, "policy", "list").stdout
        for name in ("office", "pin-portal"):
            if name in listed:
                cli(dd, "policy", "remove", name)


def test_remember_this_browser_skips_the_second_step_until_it_is_forgotten(
    site: Site, visitor: Visitor
) -> None:
    """Under a rule that allows remembering, "Remember this browser" after a full sign-in lets
    the next sign-in in after the password; forgotten on "Where you are signed in", the next
    sign-in asks the second factor again."""
    dd, v = site.dd, visitor
    cli(dd, "user", "add", "lou")
    subprocess.run(
        [OPENMFA, "user", "set-password", "lou", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    seed = SEEDS["ivy"]
    cli(dd, "method", "add", "lou", "totp", "--secret", seed, "--no-qr", "--label", "Phone app")
    cli(dd, "policy", "add", "remember-day", "--channel", "portal", "--remember-minutes", "1440")
    try:
        v.sign_in(site.portal, "lou")
        v.at("/portal/second-factor")
        box = v.label("Remember this browser for a day")
        box.check()
        v.see("remember-offered")
        v.code(oathtool("--totp", "-b", seed))
        v.at("/portal/methods")
        [kept] = [c for c in v.context.cookies() if c["name"].endswith("-remember")]
        assert kept["httpOnly"] and kept["sameSite"] == "Lax" and kept["path"] == "/"
        assert 86000 < kept["expires"] - time.time() <= 86400
        v.button("Sign out").click()
        v.notice_says("You are signed out")
        v.sign_in(site.portal, "lou")
        v.at("/portal/methods")  # the password alone: this browser is remembered
        v.page.goto(site.portal + "/sessions")
        playwright_api.expect(
            v.page.get_by_role("heading", name="Remembered browsers")
        ).to_be_visible()
        v.see("remembered-listed")
        v.page.locator("form[action*='/sessions/remembered/'] button").click()
        v.notice_says("That browser is forgotten")
        v.see("remembered-forgotten")
        assert v.page.get_by_role("heading", name="Remembered browsers").count() == 0
        v.button("Sign out").click()
        v.sign_in(site.portal, "lou")
        v.at("/portal/second-factor")  # forgotten: the second factor again
        rows = [
            json.loads(r) for r in cli(dd, "audit", "--user", "lou", "--json").stdout.splitlines()
        ]
        details = [r["detail"] for r in rows]
        assert details.count("second factor remembered by policy rule remember-day") == 1
        assert "remembered browser forgotten by its person" in details
    finally:
        cli(dd, "policy", "remove", "remember-day")


def test_a_temporary_access_code_lets_a_person_without_their_phone_enroll_a_new_one(
    site: Site, visitor: Visitor
) -> None:
    out = cli(site.dd, "user", "access-code", "gus", "--minutes", "60").stdout
    found = re.search(r"access code for gus: (\d{5}-\d{5})", out)
    assert found, out
    code = found.group(1)
    v = visitor
    v.sign_in(site.portal, "gus")
    v.code(code)  # pasted as the helpdesk said it, dash included
    v.at("/portal/methods")
    assert "Temporary access code" in v.page.locator("tbody").inner_text()
    v.button("Add an authenticator app").click()
    secret = v.page.locator("#secret").inner_text().replace(" ", "")
    v.code(oathtool("--totp", "-b", secret), "Add the app")
    v.notice_says("authenticator app was added")
    v.button("Sign out").click()
    v.sign_in(site.portal, "gus")
    v.code(code)  # single use
    v.alert_says("code is not right")
    v.code(oathtool("--totp", "-b", secret))
    v.at("/portal/methods")
    audit = [
        json.loads(x) for x in cli(site.dd, "audit", "--user", "gus", "--json").stdout.splitlines()
    ]
    given = [e for e in audit if e["detail"] == "access-code (60 min, single use)"]
    assert len(given) == 1 and given[0]["client"] == "cli"
    used = [
        e for e in audit if e["method_id"] == given[0]["method_id"] and e["result"] == "accepted"
    ]
    assert len(used) == 1 and used[0]["client"] == "portal"


def test_a_first_method_my_phone_number_and_a_one_time_bypass(site: Site, visitor: Visitor) -> None:
    v = visitor
    v.sign_in(site.portal, "hal")  # no method yet; the node allows self-enrollment
    v.at("/portal/methods")
    v.notice_says("Add your first sign-in method")
    v.see("first-method")
    v.button("Add an authenticator app").click()
    secret = v.page.locator("#secret").inner_text().replace(" ", "")
    v.code(oathtool("--totp", "-b", secret), "Add the app")
    assert methods_table(v) == ["Authenticator app"]

    # A hardware token from the inventory: claimed by its serial and the code it shows.
    fob = b"12345678901234567890".hex()
    (site.dd / "fob.csv").write_text(f"serial,secret,type\nFOB-9,hex:{fob},hotp\n")
    cli(site.dd, "token", "import", str(site.dd / "fob.csv"))
    v.button("Add a hardware token").click()
    v.see("hardware-token")
    v.label("Serial number").fill("FOB-9")
    v.label("Code").fill("000000")
    v.button("Add the token").click()
    v.alert_says("do not match a token")
    v.see("hardware-token-refused")
    v.label("Code").fill(oathtool("--hotp", fob))
    v.button("Add the token").click()
    v.notice_says("hardware token was added")
    assert methods_table(v) == ["Authenticator app", "Hardware token FOB-9"]

    v.page.get_by_role("link", name="My details").click()
    v.see("my-details")
    v.label("Phone number").fill("12")
    v.button("Save").click()
    v.alert_says("not a phone number")
    v.label("Phone number").fill("06 12345678")  # [portal] phone_region = "NL"
    v.button("Save").click()
    v.notice_says("phone number was saved")
    assert v.label("Phone number").input_value() == "+31612345678"
    assert "+31612345678" in cli(site.dd, "user", "show", "hal").stdout

    v.button("Ask for a one-time bypass").click()
    v.notice_says("one-time bypass is open")
    v.see("bypass")
    verified = cli(site.dd, "verify", "hal", "000000")
    assert "bypass" in verified.stdout, verified.stdout


def test_a_passkey_registered_then_signed_in_with(site: Site, visitor: Visitor) -> None:
    """Chromium's virtual authenticator (DevTools: WebAuthn.addVirtualAuthenticator) is the
    passkey; a passkey's relying party is a host name, so the browser uses localhost."""
    v = visitor
    portal = site.portal.replace("127.0.0.1", "localhost")
    cdp = v.context.new_cdp_session(v.page)
    cdp.send("WebAuthn.enable")
    options = VIRTUAL_AUTHENTICATOR
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})[
        "authenticatorId"
    ]
    v.sign_in(portal, "eve")
    assert not v.button("Sign in with a passkey").count()  # none yet: codes and push
    v.code(totp("eve"))
    v.button("Add a passkey").click()
    v.see("add-passkey")
    v.label("Passkey name").fill("Work laptop")
    v.button("Create the passkey").click()
    v.notice_says("passkey was added")
    assert sorted(methods_table(v)) == ["Phone app", "Work laptop"]
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(stored["credentials"]) == 1
    v.button("Sign out").click()

    # Signing in with it: no code typed.
    v.sign_in(portal, "eve")
    v.see("second-factor-passkey")
    v.button("Sign in with a passkey").click()
    v.page.wait_for_url(re.compile(r".*/portal/methods$"))
    v.see("signed-in-by-passkey")
    v.button("Sign out").click()

    # A clone of the passkey (the same key in another authenticator, its count behind the
    # original's) is refused: the node keeps each passkey's signature count.
    (original,) = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})[
        "credentials"
    ]
    assert original["signCount"] >= 1
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
    clone = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})["authenticatorId"]
    cdp.send(
        "WebAuthn.addCredential",
        {"authenticatorId": clone, "credential": {**original, "signCount": 0}},
    )
    v.sign_in(portal, "eve")
    v.button("Sign in with a passkey").click()
    v.alert_says("passkey was not accepted")
    v.see("cloned-passkey-refused")
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": clone})
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})[
        "authenticatorId"
    ]
    cdp.send(
        "WebAuthn.addCredential",
        {
            "authenticatorId": authenticator,
            "credential": {**original, "signCount": original["signCount"] + 5},
        },
    )
    v.page.goto(portal + "/second-factor")
    v.button("Sign in with a passkey").click()  # the original again (its count is ahead)
    v.page.wait_for_url(re.compile(r".*/portal/methods$"))
    v.button("Sign out").click()

    # A failed user verification (a wrong fingerprint) is refused: no sign-in.
    cdp.send(
        "WebAuthn.setUserVerified", {"authenticatorId": authenticator, "isUserVerified": False}
    )
    v.sign_in(portal, "eve")
    v.button("Sign in with a passkey").click()
    status = v.page.locator("#passkey-status")
    status.wait_for(state="visible")
    assert "not used" in status.inner_text()
    v.at("/portal/second-factor")
    # A forged answer sent without the browser is refused by the node.
    with v.page.expect_navigation():  # the page the forged answer brings, not this one
        v.page.evaluate(
            """() => { const f = document.querySelector('form[data-passkey]');
                       f.querySelector('input[name=credential]').value =
                         JSON.stringify({id: 'AAAA', rawId: 'AAAA', type: 'public-key',
                                         response: {}}); f.submit(); }"""
        )
    v.alert_says("passkey was not accepted")


def test_language_theme_csrf_and_the_attempt_limit(
    site: Site, chromium: Any, visitor: Visitor
) -> None:
    # The browser's language, then the person's choice.
    dutch = Visitor(chromium, visitor.folder, locale="nl-BE")
    try:
        dutch.page.goto(site.portal + "/")
        assert dutch.page.locator("html").get_attribute("lang") == "nl"
        playwright_api.expect(dutch.button("Aanmelden")).to_be_visible()
        dutch.see("sign-in-nl")
        dutch.label("Taal").select_option("en")
        dutch.button("Taal wijzigen").click()
        playwright_api.expect(dutch.button("Sign in")).to_be_visible()
        dutch.label("Language").select_option("nl")
        dutch.button("Change language").click()
        dutch.label("Gebruikersnaam").fill("dan")
        dutch.label("Wachtwoord").fill(PASSWORD)
        dutch.button("Aanmelden").click()
        dutch.label("Verificatiecode").fill(totp("dan"))
        dutch.button("Controleren").click()
        playwright_api.expect(
            dutch.page.get_by_role("heading", name="Mijn methoden")
        ).to_be_visible()
        dutch.see("methods-nl")
        assert dutch.errors == []
    finally:
        dutch.close()

    # The custom theme: its own page text and colours.
    v = visitor
    v.page.goto(site.themed + "/")
    playwright_api.expect(v.page.get_by_text("Corp", exact=True)).to_be_visible()
    accent = v.page.evaluate(
        "getComputedStyle(document.documentElement).getPropertyValue('--omfa-accent').trim()"
    )
    assert accent == "#6a1b9a"
    v.see("custom-theme")

    # A form without its CSRF token is refused, on a page that says so.
    v.page.goto(site.portal + "/sign-in")
    v.expected.append("status of 403")
    v.page.evaluate("document.querySelector('main form input[name=csrf]').remove()")
    v.label("User name").fill("dan")
    v.label("Password").fill(PASSWORD)
    v.button("Sign in").click()
    v.alert_says("did not come from this portal")
    v.see("csrf-refused")
    # A form post without its CSRF token, or from another site, is refused and changes nothing.
    with httpx.Client(base_url=site.portal, follow_redirects=False) as h:
        page = h.get("/sign-in")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        form = {"user": "dan", "password": PASSWORD}
        refused = h.post("/sign-in", data=form)
        assert refused.status_code == 403 and "did not come from this portal" in refused.text
        assert "Traceback" not in refused.text
        forged = h.post(
            "/sign-in",
            data={**form, "csrf": token.group(1)},
            headers={"Origin": "https://evil.example"},
        )
        assert forged.status_code == 403
        sent = h.post("/sign-in", data={**form, "csrf": token.group(1)})
        assert sent.status_code == 303 and sent.headers["location"].endswith("/second-factor")
        headers = sent.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "'unsafe-inline'" not in headers["content-security-policy"]
        cookie = headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie

    # The themed portal allows 3 attempts a minute from one address; the 4th is refused.
    with httpx.Client(base_url=site.themed, follow_redirects=False) as h:
        statuses = []
        for _ in range(4):
            token = re.search(r'name="csrf" value="([^"]+)"', h.get("/sign-in").text)
            assert token
            r = h.post("/sign-in", data={"user": "nobody", "password": "x", "csrf": token[1]})
            statuses.append(r.status_code)
        assert statuses == [200, 200, 200, 429], statuses
        assert "Too many attempts" in r.text


@pytest.mark.parametrize(
    ("user", "screen"),
    [("ivy", (360, 740)), ("jon", (320, 640))],
    ids=["360x740", "320x640"],
)
def test_every_page_works_on_a_phone(
    site: Site,
    chromium: Any,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    user: str,
    screen: tuple[int, int],
) -> None:
    """A person on a phone: every page fits the screen (no sideways scrolling), its buttons
    can be pressed (Playwright's click, which waits until nothing covers them, never forced),
    and axe-core still finds nothing serious."""
    folder = OUTPUT / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    v = Visitor(chromium, folder, phone=screen)
    try:
        v.page.goto(site.portal + "/")
        v.fits("phone-sign-in")
        v.label("User name").fill(user)
        v.label("Password").fill("not the password")
        v.button("Sign in").click()
        v.alert_says("not right")
        v.fits("phone-sign-in-refused")
        v.label("Password").fill(PASSWORD)
        v.button("Sign in").click()
        v.at("/portal/second-factor")
        v.fits("phone-second-factor")
        v.code("000000")
        v.alert_says("code is not right")
        v.fits("phone-second-factor-refused")
        v.code(totp(user))
        v.at("/portal/methods")
        v.fits("phone-methods")
        v.button("New backup codes").click()
        v.fits("phone-backup-codes")
        v.page.get_by_role("link", name="I have saved them").click()
        v.at("/portal/methods")
        v.fits("phone-methods-two")
        v.button("Add an authenticator app").click()
        v.at("/portal/app")
        v.fits("phone-add-app")
        v.page.get_by_role("link", name="Cancel").click()
        v.button("Add a hardware token").click()
        v.at("/portal/token?")  # a form of method get: its (empty) query
        v.fits("phone-token")
        v.page.get_by_role("link", name="Cancel").click()
        v.button("Add a passkey").click()
        v.at("/portal/passkeys")
        v.fits("phone-passkey")
        v.page.get_by_role("link", name="Cancel").click()
        v.button("Activate the mobile app").click()
        v.at("/portal/mobile-app")
        v.fits("phone-mobile-app")
        phone = Phone(tmp_path / f"{user}.json")
        url = v.page.locator("#activation-url").inner_text()
        phone.run("activate", url, v.page.locator("#activation-code").inner_text())
        v.page.wait_for_url(re.compile(r".*/portal/methods$"), timeout=60_000)
        v.page.get_by_role("link", name="Recent sign-ins").click()
        v.at("/portal/sign-ins")
        v.fits("phone-sign-ins")
        v.page.get_by_role("link", name="My details").click()
        v.at("/portal/profile")
        v.fits("phone-my-details")
        v.page.get_by_role("link", name="My methods").click()
        # In Dutch (longer words) too.
        v.label("Language").select_option("nl")
        v.button("Change language").click()
        playwright_api.expect(v.page.get_by_role("heading", name="Mijn methoden")).to_be_visible()
        v.fits("phone-methods-nl")
        v.label("Taal").select_option("en")
        v.button("Taal wijzigen").click()
        # "Remove" is pressed as a thumb presses it: nothing covers it.
        v.page.get_by_role("button", name=re.compile("^Remove Backup codes", re.I)).click()
        v.at("/portal/confirm")
        v.fits("phone-confirm")
        v.label("Password").fill(PASSWORD)
        v.button("Continue").click()
        v.button("Send a push to my phone").click()
        v.at("/portal/push")
        v.fits("phone-push")
        (pending,) = phone.pending(wait=20)
        number = v.page.locator(".number").inner_text()
        phone.run("approve", str(pending["id"]), "--number", number)
        v.page.wait_for_url(re.compile(r".*/portal/methods$"), timeout=60_000)
        v.notice_says("was removed")
        v.fits("phone-removed")
        assert v.errors == [], f"console errors: {v.errors}"
    finally:
        v.close()
