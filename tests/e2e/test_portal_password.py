"""My password (issue 36) in a real browser: Debian's Chromium, driven by Playwright, against
real node and portal processes — the node's own password, then an OpenLDAP directory's (a real
slapd: RFC 3062's password modify) and Active Directory's (a Samba domain controller: unicodePwd
over LDAPS). Each time the old password is refused and the new one signs in; every refusal is
said in plain words, the pages pass axe-core, in English, in Dutch and on a 320-pixel phone."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .browser import OUTPUT as OUTPUT_ROOT
from .browser import PASSWORD, Visitor, launch
from .directory_server import (
    AD_ADMIN_DN,
    AD_ADMIN_PASSWORD,
    AD_BASE,
    BASE,
    directory_server,
    person,
    samba_dc,
)
from .helpers import (
    OPENMFA,
    cli,
    free_port,
    init,
    oathtool,
    server,
    start_service,
    stop,
    wait_for,
)

OUTPUT = OUTPUT_ROOT / "password"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
SEED2 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
"""A second app of the same person: two sessions signed in at once need two fresh codes."""
NEW = "rivers of tea and cardboard"
pytestmark = pytest.mark.e2e


@contextmanager
def site(
    base: Path,
    toml: str,
    users: dict[str, str | None],
    ldap: dict[str, str] | None = None,
    source_password: str = "",
) -> Iterator[str]:
    """A node (``toml`` added to its server.toml, ``ldap``: its [ldap] settings) whose
    ``users`` have two authenticator apps (and the node's own password, where one is given),
    and a portal host: its URL. ``source_password``: the bind password of the directory
    source ``ad``."""
    dd = base / "node"
    init(dd)
    conf = dd / "server.toml"
    text = conf.read_text()
    head, _, rest = text.partition("\n[ldap]\n")
    section, nxt, tail = rest.partition("\n[")
    for key, value in (ldap or {}).items():
        section = re.sub(rf"^#? ?{key} = .*$", "", section, flags=re.M)
        section = f"{key} = {json.dumps(value)}\n" + section
    conf.write_text(head + "\n[ldap]\n" + section + nxt + tail + "\n" + toml)
    if source_password:
        subprocess.run(
            [OPENMFA, "directory", "set-password", "ad", "--password-stdin", "--data-dir", str(dd)],
            input=source_password + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
    for user, password in users.items():
        cli(dd, "user", "add", user)
        if password is not None:
            subprocess.run(
                [OPENMFA, "user", "set-password", user, "--password-stdin", "--data-dir", str(dd)],
                input=password + "\n", text=True, check=True, capture_output=True,
            )  # fmt: skip
        for seed, label in ((SEED, "Phone app"), (SEED2, "Tablet app")):
            cli(dd, "method", "add", user, "totp", "--secret", seed, "--no-qr", "--label", label)
    key = cli(dd, "apikey", "create", "portal", "--scope", "portal").stdout.strip()
    folder = base / "portal"
    folder.mkdir()
    (folder / "portal.key").write_text(key + "\n")
    (folder / "portal.key").chmod(0o600)
    port = free_port()
    (folder / "portal.toml").write_text(
        f'[portal]\nlisten = "127.0.0.1:{port}"\nnodes = ["NODE"]\n'
        'api_key_file = "portal.key"\nattempts_per_minute = 1000\nlanguages = ["en", "nl"]\n'
    )
    with server(dd) as node:
        config = folder / "portal.toml"
        config.write_text(config.read_text().replace("NODE", node.url))
        url = f"http://127.0.0.1:{port}/portal"
        proc = start_service(
            ["portal", "serve", "--config", str(config)], url + "/healthz", folder / "portal.log"
        )
        try:
            yield url
        finally:
            stop(proc)
        assert "Traceback" not in (folder / "portal.log").read_text()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with launch() as browser:
        yield browser


@pytest.fixture
def folder(request: pytest.FixtureRequest) -> Path:
    out = OUTPUT / request.node.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


@contextmanager
def visitor(chromium: Any, folder: Path, **options: Any) -> Iterator[Visitor]:
    v = Visitor(chromium, folder, **options)
    try:
        yield v
    finally:
        v.close()
    assert v.errors == [], f"console errors: {v.errors}"


def signed_in(v: Visitor, url: str, user: str, password: str, seed: str) -> None:
    v.sign_in(url, user, password)
    v.code(oathtool("--totp", "-b", seed))
    v.at("/portal/methods")


def change(v: Visitor, current: str, new: str, again: str | None = None) -> None:
    v.label("Current password").fill(current)
    v.label("New password").fill(new)
    v.label("New password again").fill(new if again is None else again)
    v.button("Change my password").click()


def changed_and_only_the_new_one_signs_in(
    v: Visitor, url: str, user: str, old: str, new: str
) -> None:
    """After the change: signed out, the old password refused, the new one accepted."""
    v.notice_says("Your password was changed")
    v.see("changed")
    v.button("Sign out").click()
    v.sign_in(url, user, old)
    v.alert_says("user name or password is not right")
    v.label("Password").fill(new)
    v.button("Sign in").click()
    v.at("/portal/second-factor")  # the first factor took the new password


def test_the_nodes_own_password_changed_with_every_refusal_said(
    chromium: Any, folder: Path, tmp_path: Path
) -> None:
    with (
        site(tmp_path, "", {"ada": PASSWORD}) as url,
        visitor(chromium, folder) as v,
        visitor(chromium, folder / "other") as other,
    ):
        (folder / "other").mkdir(exist_ok=True)
        signed_in(other, url, "ada", PASSWORD, SEED2)  # another browser, signed in before
        signed_in(v, url, "ada", PASSWORD, SEED)
        v.page.get_by_role("link", name="My password").click()
        v.at("/portal/password")
        v.see("password")
        assert v.label("New password").get_attribute("autocomplete") == "new-password"
        for current, new, again, said in (
            ("not my password", NEW, None, "Your current password is not right"),
            (PASSWORD, "too short", None, "too short: use at least 12 characters"),
            (PASSWORD, "Welcome2024!!", None, "on a list of common passwords"),
            (PASSWORD, PASSWORD, None, "is your current one"),
            (PASSWORD, NEW, NEW + "!", "not the same"),
        ):
            change(v, current, new, again)
            v.alert_says(said)
            v.see("refused")
        change(v, PASSWORD, NEW)
        changed_and_only_the_new_one_signs_in(v, url, "ada", PASSWORD, NEW)
        other.page.goto(url + "/methods")  # the other browser's session has ended
        other.at("/portal/sign-in")


def test_an_old_sign_in_confirms_it_is_them_first_then_comes_back(
    chromium: Any, folder: Path, tmp_path: Path
) -> None:
    """[portal] reauth_minutes: a sign-in older than that is confirmed (password and code)
    before the page opens, and the person is back at My password after it."""
    with (
        site(tmp_path, "[portal]\nreauth_minutes = 0.1\n", {"cas": PASSWORD}) as url,
        visitor(chromium, folder) as v,
    ):
        signed_in(v, url, "cas", PASSWORD, SEED)

        def asked_to_confirm() -> bool:
            v.page.goto(url + "/password")
            return bool(v.page.url.endswith("/portal/confirm"))

        wait_for(asked_to_confirm, "a sign-in older than reauth_minutes", 30)
        v.notice_says("first confirm it is you")
        v.label("Password").fill(PASSWORD)
        v.button("Continue").click()
        v.code(oathtool("--totp", "-b", SEED2))
        v.at("/portal/password")
        change(v, PASSWORD, NEW)
        changed_and_only_the_new_one_signs_in(v, url, "cas", PASSWORD, NEW)


def test_my_password_in_dutch_and_on_a_phone(chromium: Any, folder: Path, tmp_path: Path) -> None:
    with (
        site(tmp_path, "", {"bo": PASSWORD}) as url,
        visitor(chromium, folder, locale="nl-NL", phone=(320, 640)) as v,
    ):
        v.page.goto(url + "/")
        v.label("Gebruikersnaam").fill("bo")
        v.label("Wachtwoord").fill(PASSWORD)
        v.page.get_by_role("button", name="Aanmelden").click()
        v.label("Verificatiecode").fill(oathtool("--totp", "-b", SEED))
        v.page.get_by_role("button", name="Controleren").click()
        v.page.goto(url + "/sign-ins")
        v.page.get_by_role("link", name="Wijzig uw wachtwoord als een aanmelding").click()
        v.at("/portal/password")
        v.fits("wachtwoord")
        v.label("Huidig wachtwoord").fill(PASSWORD)
        v.label("Nieuw wachtwoord").fill("wachtwoord2024")
        v.label("Nieuw wachtwoord nogmaals").fill("wachtwoord2024")
        v.page.get_by_role("button", name="Mijn wachtwoord wijzigen").click()
        v.alert_says("lijst van veelgebruikte wachtwoorden")
        v.fits("geweigerd")


def test_an_openldap_password_changed_from_the_portal(
    chromium: Any, folder: Path, tmp_path: Path
) -> None:
    people = f"ou=people,{BASE}"
    with directory_server(tmp_path / "slapd") as ldap:
        ldap.add(f"dn: {people}\nobjectClass: organizationalUnit\nou: people\n")
        ldap.add(person("lin", people, password=PASSWORD))
        toml = '[portal]\nprimary = "ldap"\npassword_change = true\n'
        settings = {"url": ldap.url, "bind_dn_template": f"uid={{user}},{people}"}
        with site(tmp_path, toml, {"lin": None}, settings) as url, visitor(chromium, folder) as v:
            signed_in(v, url, "lin", PASSWORD, SEED)
            v.page.goto(url + "/password")
            v.see("password")
            change(v, "not my password", NEW)
            v.alert_says("Your current password is not right")
            change(v, PASSWORD, NEW)
            changed_and_only_the_new_one_signs_in(v, url, "lin", PASSWORD, NEW)
        for password, right in ((NEW, True), (PASSWORD, False)):  # slapd itself says so
            proc = subprocess.run(
                ["ldapwhoami", "-x", "-H", ldap.url, "-D", f"uid=lin,{people}", "-w", password],
                capture_output=True, text=True,
            )  # fmt: skip
            assert (proc.returncode == 0) is right, proc.stderr


def test_an_active_directory_password_changed_from_the_portal(
    chromium: Any, folder: Path, tmp_path: Path
) -> None:
    first, complex_new = "Old-Passw0rd-of-Max", "Rivers of Tea 4 cardboard"
    # AD takes an old password for an hour after a change (NTLM, and Samba's simple binds):
    # not here, so the old one is refused at once.
    with samba_dc(tmp_path / "samba", options="old password allowed period = 0") as dc:
        dc.tool("domain", "passwordsettings", "set", "--min-pwd-age=0")
        dc.tool("user", "create", "max", first)
        users = f"CN=Users,{AD_BASE}"
        toml = (
            '[portal]\nprimary = "ldap"\npassword_change = true\n'
            "[directory]\n[[directory.sources]]\n"
            f'name = "ad"\nkind = "ad"\nurl = "{dc.url}"\nca_file = "{dc.ca_file}"\n'
            f'bind_dn = "{AD_ADMIN_DN}"\nbase_dns = ["{users}"]\n'
        )
        base = tmp_path / "site"
        base.mkdir()
        with (
            site(base, toml, {"max": None}, {"source": "ad"}, AD_ADMIN_PASSWORD) as url,
            visitor(chromium, folder) as v,
        ):
            signed_in(v, url, "max", first, SEED)
            v.page.goto(url + "/password")
            change(v, first, NEW)  # long, but not complex enough for AD's policy
            v.alert_says("The directory refused the new password")
            v.see("refused-by-ad")
            change(v, first, complex_new)
            changed_and_only_the_new_one_signs_in(v, url, "max", first, complex_new)
