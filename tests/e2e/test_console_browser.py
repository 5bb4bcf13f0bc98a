"""The administration console in a real browser (issue 37): Debian's Chromium, driven by
Playwright, against real node and console processes. A helpdesk operator signs in with a
numbered push (approved by the reference authenticator, the number typed there), finds a
locked user among hundreds, unlocks them, issues a temporary access code that then verifies for
that user; an admin-only action is refused by the node (403) and said as a sentence; a forged
POST is refused; the API keys page is refused by the node; the farm and a month's report are
shown; the audit shows the operator's name. An administrator signs in with a passkey
(Chromium's virtual authenticator), gives a role, makes an API key (its token works at the node)
and imports RFC 6030's password-encrypted PSKC file through the page. axe-core judges every
page, and the user's page, a search by state, the token inventory, the dashboard, a report and
the farm fit a 375 px wide phone."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .browser import OUTPUT as OUTPUT_ROOT
from .browser import PASSWORD, Visitor, launch, playwright_api
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

OUTPUT = OUTPUT_ROOT / "console"
FIGURE7 = Path(__file__).resolve().parents[1] / "fixtures" / "pskc" / "rfc6030-figure7.xml"
pytestmark = pytest.mark.e2e
PEOPLE = 300


def _password(dd: Path, name: str) -> None:
    subprocess.run(
        [OPENMFA, "user", "set-password", name, "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with launch() as browser:
        yield browser


def test_a_helpdesk_operator_unlocks_a_user_and_gives_an_access_code(
    chromium: Any, tmp_path: Path
) -> None:
    dd = tmp_path / "node"
    admin_key = init(dd)
    port = free_port()
    with (dd / "server.toml").open("a") as f:
        f.write(f'\n[mobile]\nenabled = true\npublic_url = "http://127.0.0.1:{port}/mobile"\n')
    cli(dd, "user", "add", "hana")
    _password(dd, "hana")
    cli(dd, "user", "role", "hana", "helpdesk")
    cli(dd, "user", "add", "pia")
    cli(dd, "method", "add", "pia", "totp", "--secret", "JBSWY3DPEHPK3PXP" * 2, "--no-qr")
    key = cli(dd, "apikey", "create", "console1", "--scope", "console").stdout.strip()
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(
        "serial,secret,type,digits\n"
        + "".join(f"FOB-{i:04d},hex:{(b'%020d' % i).hex()},hotp,6\n" for i in range(3))
    )
    cli(dd, "token", "import", str(tokens))
    folder = OUTPUT / "helpdesk"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with server(dd, port=port) as node:
        admin = {"authorization": f"Bearer {admin_key}"}
        with httpx.Client(base_url=node.url, headers=admin, timeout=10) as sdk:
            for i in range(PEOPLE):  # pia among hundreds
                assert sdk.post("/v1/users", json={"name": f"p{i:04d}"}).status_code == 201
            for _ in range(12):  # pia locked by wrong codes, as anyone's would be
                sdk.post("/v1/authenticate", json={"user": "pia", "code": "000000"})
            assert sdk.get("/v1/users/pia").json()["locked_until"]
        # hana's phone: the reference authenticator, activated with a code from the CLI.
        code = json.loads(cli(dd, "device", "activate", "hana", "--json").stdout)
        phone = Phone(tmp_path / "hana.json")
        phone.run("activate", code["url"], code["code"])
        url, proc = _serve(tmp_path / "console", "console", key, node.url)
        v = Visitor(chromium, folder)
        try:
            _day(v, url, phone, node.url, admin)
            small = Visitor(chromium, folder, phone=(375, 812))
            try:
                small.sign_in(url, "hana")
                _push(small, phone)
                small.page.goto(url + "/users/pia")
                small.fits("user-on-a-phone")
                small.page.goto(url + "/users?state=locked")
                small.fits("locked-users-on-a-phone")
                locked = small.page.content()  # pia was unlocked above: nobody is locked
                assert '<option value="locked" selected="">' in locked and "No user found" in locked
                small.page.goto(url + "/tokens")
                small.fits("tokens-on-a-phone")
                assert "FOB-0001" in small.page.content()
                small.page.goto(url + "/dashboard")
                small.fits("dashboard-on-a-phone")
                small.page.goto(url + "/reports")
                small.fits("reports-on-a-phone")
                small.page.goto(url + "/farm")
                small.fits("farm-on-a-phone")
            finally:
                small.close()
            assert small.errors == [], small.errors
        finally:
            v.close()
            stop(proc)
        assert v.errors == [], f"console errors: {v.errors}"


def _serve(host: Path, kind: str, key: str, node: str) -> tuple[str, subprocess.Popen[str]]:
    """A console (or portal) host: its folder, its TOML and key file (mode 0600), its process;
    its URL, at ``localhost`` (a passkey's relying party is a host name)."""
    host.mkdir()
    (host / f"{kind}.key").write_text(key + "\n")
    (host / f"{kind}.key").chmod(0o600)
    port = free_port()
    (host / f"{kind}.toml").write_text(
        f'[{kind}]\nlisten = "127.0.0.1:{port}"\nnodes = ["{node}"]\n'
        f'api_key_file = "{kind}.key"\nattempts_per_minute = 1000\n'
    )
    url = f"http://localhost:{port}/{kind}"
    argv = [kind, "serve", "--config", str(host / f"{kind}.toml")]
    return url, start_service(argv, url + "/healthz", host / f"{kind}.log")


def test_an_admin_signs_in_with_a_passkey_and_gives_a_role(chromium: Any, tmp_path: Path) -> None:
    """The passkey is Chromium's virtual authenticator, added at the User Portal (the same
    relying party, localhost); the console then offers it and signs the admin in with it."""
    dd = tmp_path / "node"
    init(dd)
    seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    for name in ("nora", "pia"):
        cli(dd, "user", "add", name)
        _password(dd, name)
    cli(dd, "method", "add", "nora", "totp", "--secret", seed, "--no-qr")
    cli(dd, "user", "role", "nora", "admin")
    console_key = cli(dd, "apikey", "create", "console1", "--scope", "console").stdout.strip()
    portal_key = cli(dd, "apikey", "create", "portal1", "--scope", "portal").stdout.strip()
    folder = OUTPUT / "passkey"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with server(dd) as node:
        portal, portal_proc = _serve(tmp_path / "portal", "portal", portal_key, node.url)
        url, proc = _serve(tmp_path / "console", "console", console_key, node.url)
        v = Visitor(chromium, folder)
        try:
            cdp = v.context.new_cdp_session(v.page)
            cdp.send("WebAuthn.enable")
            cdp.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_AUTHENTICATOR})
            v.sign_in(portal, "nora")
            v.code(oathtool("--totp", "-b", seed))
            v.button("Add a passkey").click()
            v.label("Passkey name").fill("Work laptop")
            v.button("Create the passkey").click()
            v.notice_says("passkey was added")

            v.sign_in(url, "nora")
            v.at("/console/second-factor")
            assert v.page.get_by_label("Verification code").count() == 0  # no rule for codes
            v.see("second-factor-passkey")
            v.button("Sign in with a passkey").click()
            v.at("/console/dashboard")
            v.see("dashboard-admin")
            v.page.goto(url + "/users/pia")
            v.label("Role (administrators only)").select_option("auditor")
            v.button("Set the role").click()
            v.notice_says("The role was changed.")
            playwright_api.expect(v.page.locator("#role")).to_have_text("auditor")
            v.see("role-set")
            v.page.goto(url + "/audit?user=pia")
            row = v.page.locator("tbody tr", has_text="user.role")
            playwright_api.expect(row.first).to_contain_text("console1/nora")

            v.page.get_by_role("link", name="API keys").click()
            v.label("Name").fill("vpn-gateway")
            v.label("Scope").select_option("adapter")
            v.button("Make the key").click()
            made = v.page.locator("code.token").inner_text()
            assert made.startswith("omfa_")
            v.see("key-made")
            r = httpx.post(
                f"{node.url}/v1/authenticate",
                json={"user": "pia", "code": "000000"},
                headers={"authorization": f"Bearer {made}"},
            )
            assert r.status_code == 200 and r.json()["accepted"] is False  # the key works
            v.page.get_by_role("link", name="Tokens").click()
            v.page.locator("#import-file").set_input_files(str(FIGURE7))
            v.label("Password or pre-shared key of an encrypted file (optional)").fill("qwerty")
            v.button("Import").click()
            playwright_api.expect(v.page.get_by_role("status")).to_contain_text(
                "1 of the 1 tokens of rfc6030-figure7.xml were imported"
            )
            v.see("tokens-imported")
            v.page.goto(url + "/tokens?free=1")
            playwright_api.expect(v.page.locator("tbody")).to_contain_text("987654321")
        finally:
            v.close()
            stop(proc)
            stop(portal_proc)
        assert v.errors == [], f"console errors: {v.errors}"


def _push(v: Visitor, phone: Phone) -> None:
    v.button("Send a push to my phone").click()
    number = v.page.locator("#push-number").inner_text()
    v.see("push-number")
    (request,) = phone.pending(wait=20)
    phone.run("approve", str(request["id"]), "--number", number)
    v.button("I approved it, continue").click()
    v.at("/console/dashboard")


def _day(v: Visitor, url: str, phone: Phone, node: str, admin: dict[str, str]) -> None:
    v.expected.append("403")  # the refused role change's status, on purpose
    v.sign_in(url, "hana", "not the password")
    v.alert_says("user name or password is not right")
    v.label("Password").fill(PASSWORD)
    v.button("Sign in").click()
    v.at("/console/second-factor")
    v.see("second-factor")
    assert v.page.get_by_label("Verification code").count() == 0  # no rule allows a code
    _push(v, phone)
    v.see("dashboard")

    v.page.get_by_role("link", name="Users", exact=True).click()
    v.see("users")
    v.label("Name starts with").fill("pi")
    v.button("Search").click()
    row = v.page.locator("tbody tr", has_text="pia")
    playwright_api.expect(row).to_contain_text("Locked")
    v.see("users-found")
    row.get_by_role("link", name="pia").click()
    v.at("/console/users/pia")
    playwright_api.expect(v.page.locator("#state")).to_contain_text("Locked until")
    v.see("user-locked")
    v.button("Unlock").click()
    v.notice_says("The user is unlocked.")
    playwright_api.expect(v.page.locator("#state")).to_contain_text("Active")
    v.see("user-unlocked")

    v.button("Issue a temporary access code").click()
    v.notice_says("temporary access code was issued")
    code = v.page.locator("#access-code").inner_text().strip()
    v.see("access-code")
    r = httpx.post(f"{node}/v1/authenticate", json={"user": "pia", "code": code}, headers=admin)
    assert r.json()["accepted"] is True, r.text
    v.page.reload()
    assert v.page.locator("#access-code").count() == 0  # shown once

    # An admin-only action: the node refuses it (403), the page says so in a sentence.
    v.label("Role (administrators only)").select_option("admin")
    v.button("Set the role").click()
    v.alert_says("your role does not allow it")
    v.see("refused-role")
    # A forged POST (no CSRF token of this session): refused by the console itself.
    forged = v.page.request.post(url + "/users/pia/role", form={"role": "admin"})
    assert forged.status == 403 and "did not come from this console" in forged.text()
    user = httpx.get(f"{node}/v1/users/pia", headers=admin).json()
    assert user["role"] == "" and not user["locked_until"]

    # The API keys page: the node refuses a helpdesk operator (403), said as a sentence.
    v.page.goto(url + "/keys")
    v.alert_says("your role does not allow it")
    v.see("keys-refused")
    forged = v.page.request.post(url + "/keys/create", form={"name": "x", "scope": "admin"})
    assert forged.status == 403 and "did not come from this console" in forged.text()
    v.page.get_by_role("link", name="Farm").click()
    playwright_api.expect(v.page.locator("tbody tr").first).to_contain_text("alone")
    v.see("farm")
    v.page.get_by_role("link", name="Reports").click()
    playwright_api.expect(v.page.locator("h1")).to_contain_text("Report for")
    assert v.page.locator("svg[role=img]").count() == 4
    v.see("reports")

    v.page.goto(url + "/audit?user=pia&since=24h")
    rows = v.page.locator("tbody tr", has_text="user.unlock")
    playwright_api.expect(rows.first).to_contain_text("console1/hana")
    v.see("audit")
    wait_for(lambda: "console1/hana" in v.page.content(), "the audit row")
    v.button("Sign out hana").click()
    v.notice_says("You are signed out.")
    v.see("signed-out")
    v.page.goto(url + "/users")
    v.at("/console/sign-in")
    assert re.search(r"Sign in to the console", v.page.content())
