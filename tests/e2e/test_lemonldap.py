"""LemonLDAP::NG (Debian's lemonldap-ng, a SAML/OIDC/CAS identity provider nobody here wrote)
asks OpenMFA for the second factor through its REST second factor, registered by
``openmfa adapter register lemonldap`` with LemonLDAP::NG's own lemonldap-ng-cli. Its portal runs
under plackup on loopback, its configuration in a temporary folder; the sign-in is driven over
HTTP as a browser would post its forms; codes come from oathtool."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from .helpers import Server, cli, free_port, init, oathtool, server, stop, wait_for
from .services import Idp, lemonldap, nginx

SEEDS = {"dwho": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ", "rtyler": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}
BACKUP: dict[str, list[str]] = {}
"""Each user's backup codes: correct second factors the no-gap loop can spend, one each."""
NODE_DIR: list[Path] = []
USED: dict[str, set[str]] = {}
"""The TOTP codes this module's tests spent, by user."""


@pytest.fixture(scope="module")
def idp() -> Iterator[Idp]:
    with lemonldap() as running:
        yield running


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, idp: Idp) -> Iterator[Server]:
    dd = tmp_path_factory.mktemp("llng-node") / "node"
    init(dd)
    cfg = dd / "server.toml"  # the no-gap loop types many wrong codes: no lockout in the way
    cfg.write_text(cfg.read_text().replace("lockout_threshold = 10", "lockout_threshold = 100000"))
    for user, seed in SEEDS.items():
        cli(dd, "user", "add", user)
        cli(dd, "method", "add", user, "totp", "--secret", seed, "--no-qr")
        listed = cli(dd, "method", "add", user, "backup-codes").stdout
        BACKUP[user] = [c.replace("-", "") for c in re.findall(r"^  (\d+-\d+)$", listed, re.M)]
        assert len(BACKUP[user]) == 10
    for name, file in (("lemonldap", "adapter.key"), ("lemonldap-2", "adapter-2.key")):
        key = cli(dd, "apikey", "create", name, "--scope", "adapter").stdout.strip()
        key_file = idp.folder / file
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
    NODE_DIR.append(dd)
    with server(dd) as srv:
        idp.config.write_text(
            f'[adapter]\nnode_url = "{srv.url}"\napi_key_file = "adapter.key"\n'
            f'[lemonldap]\nini = "{idp.folder}/lemonldap-ng.ini"\nprotect = ["app.example.com"]\n'
        )
        yield srv


def adapter(idp: Idp, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    return cli(idp.folder, "adapter", *args, "--config", str(idp.config), expect=expect)


def code(user: str) -> str:
    """A code of ``user``'s not used yet in this module (a code is taken once: wait for the
    next step)."""
    used = USED.setdefault(user, set())
    found: list[str] = []
    wait_for(
        lambda: found.append(oathtool("--totp", "-b", SEEDS[user])) or found[-1] not in used,
        "a fresh code",
        40,
    )
    used.add(found[-1])
    return found[-1]


def test_lemonldap_asks_openmfa_for_the_second_factor(idp: Idp, node: Server) -> None:
    before = idp.llng("get", "cfgNum")
    # Not registered yet: the password alone would do (what the guard is for).
    assert "openmfa: not registered" in adapter(idp, "status", "lemonldap").stdout
    # Requiring a second factor with none active is refused (the trap LemonLDAP::NG has).
    refused = adapter(idp, "policy", "lemonldap", "require", expect=1)
    assert "register OpenMFA first" in refused.stderr
    shown = adapter(idp, "register", "lemonldap").stdout
    assert "openmfa: registered (type REST, level 3" in shown
    assert "second factor required: yes" in shown
    assert "app.example.com: $authenticationLevel >= 3" in shown
    assert idp.llng("get", "cfgNum") != before  # a new LemonLDAP::NG configuration version

    def asked() -> bool:  # LemonLDAP::NG reads its configuration again within a second or so
        return idp.sign_in("dwho", None)[0] == "/openmfa2fcheck"

    wait_for(asked, "LemonLDAP::NG to ask for OpenMFA's code", 30)
    # A wrong code: no session (PE_BADOTP, 96).
    action, cookie, error = idp.sign_in("dwho", "123456")
    assert (action, cookie, error) == ("/openmfa2fcheck", "", "96")
    # The right code: a session cookie for the whole domain.
    right = code("dwho")
    _, cookie, error = idp.sign_in("dwho", right)
    assert cookie.startswith("lemonldap=") and "domain=.example.com" in cookie, cookie
    # The same code again (replayed): refused.
    assert idp.sign_in("dwho", right)[1:] == ("", "96")

    # The export: the registration as data, the key redacted unless asked.
    key = (idp.folder / "adapter.key").read_text().strip()
    exported = adapter(idp, "export", "lemonldap").stdout
    assert adapter(idp, "export", "lemonldap", "--redact").stdout == exported
    data = json.loads(exported)
    assert key not in exported and data["name"] == "openmfa" and data["required"] is True
    assert "(redacted)@127.0.0.1" in data["instance"]["over"]["rest2fVerifyUrl"]
    assert key in adapter(idp, "export", "lemonldap", "--with-secrets").stdout

    # The last second factor cannot be unregistered while one is required.
    refused = adapter(idp, "unregister", "lemonldap", expect=1)
    assert "password alone" in refused.stderr and "policy off" in refused.stderr
    assert "openmfa: registered" in adapter(idp, "status", "lemonldap").stdout
    _, cookie, _ = idp.sign_in("rtyler", code("rtyler"))
    assert cookie.startswith("lemonldap="), "still asked and accepted after the refusal"


HANDLER = "/usr/share/lemonldap-ng/llng-server/llng-server.psgi"
SITES = """
  server {{
    listen 127.0.0.1:{port};
    server_name app.example.com;
    location = /lmauth {{
      internal;
      proxy_pass http://127.0.0.1:{handler}$request_uri;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $host;
    }}
    location / {{
      auth_request /lmauth;
      proxy_pass http://127.0.0.1:{site};
    }}
  }}
  server {{
    listen 127.0.0.1:{site};
    location / {{ return 200 "the protected site"; }}
  }}
"""


@pytest.fixture(scope="module")
def protected_site(idp: Idp) -> Iterator[str]:
    """app.example.com behind Debian's nginx, guarded by LemonLDAP::NG's own handler (its PSGI
    server under plackup; nginx asks it with auth_request)."""
    handler_port, site_port, port = free_port(), free_port(), free_port()
    env = {**os.environ, "LLNG_DEFAULTCONFFILE": str(idp.folder / "lemonldap-ng.ini")}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with (idp.folder / "handler.log").open("w") as out:
            procs.append(
                subprocess.Popen(
                    ["plackup", "--host", "127.0.0.1", "-p", str(handler_port), HANDLER],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=idp.folder,
                )
            )
        sites = SITES.format(port=port, handler=handler_port, site=site_port)
        procs.append(nginx(idp.folder / "nginx", sites))

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{handler_port}/", timeout=2).status_code > 0
            except httpx.HTTPError:
                return False

        wait_for(up, "LemonLDAP::NG's handler", 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        for proc in reversed(procs):
            stop(proc)


def visit(site: str, cookie: str) -> int:
    """The protected site's answer to a browser carrying LemonLDAP::NG's ``cookie``."""
    value = cookie.split(";")[0].split("=", 1)[1] if cookie else ""
    headers = {"Host": "app.example.com", "Cookie": f"lemonldap={value}"}
    return httpx.get(site + "/", headers=headers, follow_redirects=False, timeout=10).status_code


def test_the_guard_holds_when_the_second_factor_is_removed_by_hand(
    idp: Idp, node: Server, protected_site: str
) -> None:
    """Someone deletes OpenMFA from LemonLDAP::NG by hand while second factors stay required:
    LemonLDAP::NG then gives a session on the password alone (its trap), but the protected
    site's rule, set at registration, asks for the level only OpenMFA gives: refused."""
    adapter(idp, "register", "lemonldap")  # as the first test left it (when run alone too)
    wait_for(lambda: idp.sign_in("rtyler", None)[0] == "/openmfa2fcheck", "registered", 30)
    _, cookie, _ = idp.sign_in("rtyler", code("rtyler"))
    assert cookie.startswith("lemonldap=")
    assert visit(protected_site, cookie) == 200  # password and OpenMFA: in
    assert visit(protected_site, "") == 401  # no session: sent to sign in
    idp.llng("delKey", "sfExtra", "openmfa")  # by hand, not with our tool
    try:
        wait_for(lambda: idp.sign_in("rtyler", None)[0] == "", "the module to be gone", 30)
        _, password_only, _ = idp.sign_in("rtyler", None)
        assert password_only.startswith("lemonldap="), "LemonLDAP::NG's trap did not happen"
        assert visit(protected_site, password_only) == 403  # the guard
    finally:
        adapter(idp, "register", "lemonldap")
    wait_for(lambda: idp.sign_in("rtyler", None)[0] == "/openmfa2fcheck", "registered again", 30)


@dataclass
class Tally:
    sign_ins: int = 0
    asked: int = 0
    """Sign-ins that were asked for the second factor after the password."""
    without: int = 0
    """Sign-ins that got a session without a correct second factor (must stay 0)."""
    refused: int = 0
    """Correct second factors refused (must stay 0)."""
    accepted: int = 0
    forms: set[str] = field(default_factory=set)


def sign_in_loop(idp: Idp, stop: threading.Event, tally: Tally, limit: int = 400) -> None:
    """Two users alternately, bounded in count (and stopped by ``stop``): every twelfth sign-in
    spends a backup code (correct), the others type a wrong code."""
    users = ["dwho", "rtyler"]
    while not stop.is_set() and tally.sign_ins < limit:
        user = users[tally.sign_ins % 2]
        right = tally.sign_ins % 12 == 0 and bool(BACKUP[user])
        code = BACKUP[user].pop() if right else "999999"
        action, cookie, _ = idp.sign_in(user, code)
        tally.sign_ins += 1
        if action:
            tally.asked += 1
            tally.forms.add(action)
        if cookie and not right:
            tally.without += 1
        if right and not cookie:
            tally.refused += 1
        if right and cookie:
            tally.accepted += 1


def test_upgrade_and_rollback_with_no_moment_without_the_second_factor(
    idp: Idp, node: Server
) -> None:
    """A new registration (here: a new adapter key) goes beside the old one — the canary
    (dwho) first, then everyone, then in its place — and back with `adapter rollback`, while
    two people keep signing in: every sign-in is asked for the second factor, none gets a
    session without a correct one, and no correct one is refused."""
    adapter(idp, "register", "lemonldap")  # as the first test left it (when run alone too)
    text = idp.config.read_text().replace('"adapter.key"', '"adapter-2.key"')
    text += "canary = '$uid eq \"dwho\"'\ncanary_seconds = 3\ngrace_seconds = 2\n"
    idp.config.write_text(text)
    tally, stop = Tally(), threading.Event()
    loop = threading.Thread(target=sign_in_loop, args=(idp, stop, tally))
    loop.start()
    try:
        wait_for(lambda: tally.sign_ins >= 4, "the sign-in loop to start", 60)
        upgraded = adapter(idp, "upgrade", "lemonldap").stdout
        used_after_upgrade = tally.sign_ins
        wait_for(lambda: tally.sign_ins >= used_after_upgrade + 4, "sign-ins after the upgrade", 60)
        rolled = adapter(idp, "rollback", "lemonldap").stdout
        done_at = tally.sign_ins
        wait_for(lambda: tally.sign_ins >= done_at + 4, "sign-ins after the rollback", 60)
    finally:
        stop.set()
        loop.join(timeout=120)
    print(
        f"no-gap loop: {tally.sign_ins} sign-ins, {tally.asked} asked for the second factor, "
        f"{tally.accepted} correct codes accepted, {tally.refused} refused, "
        f"{tally.without} sessions without a second factor; forms {sorted(tally.forms)}"
    )
    for out in (upgraded, rolled):
        assert 'canary ($uid eq "dwho")' in out and "everyone" in out, out
        assert "openmfa_next removed" in out and "openmfa: registered" in out, out
    assert tally.sign_ins == tally.asked and tally.without == 0 and tally.refused == 0, tally
    assert tally.accepted >= 3, tally
    assert "/openmfa_next2fcheck" in tally.forms  # the second registration was really used
    assert "openmfa_next" not in idp.llng("save")  # and is gone again
    # The upgrade moved the sign-ins to the new key, the rollback back to the old one.
    events = [
        json.loads(line)
        for line in cli(NODE_DIR[0], "audit", "--json").stdout.splitlines()
        if '"authenticate"' in line
    ]
    clients = [e["client"] for e in events]
    assert "lemonldap-2" in clients and clients[-1] == "lemonldap", clients[-6:]


def test_with_openmfa_down_nobody_signs_in(idp: Idp, node: Server) -> None:
    """The node stops: LemonLDAP::NG cannot reach it and refuses (fails closed)."""
    node.stop()
    action, cookie, error = idp.sign_in("dwho", oathtool("--totp", "-b", SEEDS["dwho"]))
    assert action == "/openmfa2fcheck" and cookie == "" and error != "", error
