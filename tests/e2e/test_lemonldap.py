"""LemonLDAP::NG (Debian's lemonldap-ng, a SAML/OIDC/CAS identity provider nobody here wrote)
asks OpenMFA for the second factor through its REST second factor, registered by
``openmfa adapter register lemonldap`` with LemonLDAP::NG's own lemonldap-ng-cli. Its portal runs
under plackup on loopback, its configuration in a temporary folder; the sign-in is driven over
HTTP as a browser would post its forms; codes come from oathtool."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .helpers import Server, cli, free_port, init, oathtool, server, wait_for

CLI = "/usr/share/lemonldap-ng/bin/lemonldap-ng-cli"
PSGI = "/usr/share/lemonldap-ng/portal/htdocs/index.psgi"
SEEDS = {"dwho": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ", "rtyler": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}
HOST = "auth.example.com"


@dataclass
class Idp:
    folder: Path
    port: int
    config: Path
    """adapter.toml"""

    def llng(self, *args: str) -> str:
        env = {**os.environ, "LLNG_DEFAULTCONFFILE": str(self.folder / "lemonldap-ng.ini")}
        proc = subprocess.run(
            [CLI, "-yes", "1", *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def sign_in(self, user: str, code: str | None) -> tuple[str, str, str]:
        """Password (LemonLDAP::NG's demo users: the password is the name), then ``code``
        (None: stop at the second step): (the second-factor form's action, the cookie set,
        LemonLDAP::NG's error number)."""
        base = f"http://127.0.0.1:{self.port}"
        with httpx.Client(base_url=base, headers={"Host": f"{HOST}:{self.port}"}) as c:
            page = c.get("/").text
            token = re.search(r'name="token" value="([^"]*)"', page)
            form = {"user": user, "password": user, "timezone": "0", "skin": "bootstrap"}
            if token:
                form["token"] = token.group(1)
            second = c.post("/", data=form)
            assert second.status_code == 200 and "lemonldap" not in second.cookies, second.text
            action = re.search(r'<form[^>]*action="([^"?]*)', second.text)
            if action is None:  # no second factor asked: the guard failed
                return "", second.headers.get("set-cookie", ""), ""
            if code is None:
                return action.group(1), "", ""
            fields = dict(re.findall(r'<input[^>]*name="([^"]*)"[^>]*value="([^"]*)"', second.text))
            done = c.post(action.group(1), data={**fields, "code": code})
            error = re.search(r'trmsg="(\d+)"', done.text)
            return (
                action.group(1),
                done.headers.get("set-cookie", ""),
                error.group(1) if error else "",
            )


@pytest.fixture(scope="module")
def idp() -> Iterator[Idp]:
    if not Path(CLI).exists():
        pytest.fail("run scripts/system-deps.sh: it installs lemonldap-ng")
    # LemonLDAP::NG's tool becomes www-data: its folder must be reachable by that user (pytest's
    # temporary folders are root's alone).
    folder = Path(tempfile.mkdtemp(prefix="openmfa-llng-"))
    (folder / "conf").mkdir()
    (folder / "cache").mkdir()
    shutil.copy("/var/lib/lemonldap-ng/conf/lmConf-1.json", folder / "conf")
    ini = Path("/etc/lemonldap-ng/lemonldap-ng.ini").read_text()
    ini = ini.replace("dirName = /var/lib/lemonldap-ng/conf", f"dirName = {folder}/conf")
    ini = ini.replace("/var/lib/lemonldap-ng/cache", f"{folder}/cache")
    (folder / "lemonldap-ng.ini").write_text(ini)
    www = pwd.getpwnam("www-data")
    for path in (folder, folder / "conf", folder / "cache", *folder.glob("conf/*")):
        os.chown(path, www.pw_uid, www.pw_gid)
    port = free_port()
    idp = Idp(folder, port, folder / "adapter.toml")
    idp.llng("set", "portal", f"http://{HOST}:{port}/")
    idp.llng("delKey", "reloadUrls", "localhost")  # no handler to tell: it reads every second
    log = folder / "portal.log"
    env = {**os.environ, "LLNG_DEFAULTCONFFILE": str(folder / "lemonldap-ng.ini")}
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["plackup", "--host", "127.0.0.1", "-p", str(port), PSGI],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
        )  # fmt: skip

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, "LemonLDAP::NG's portal", 60)
        yield idp
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, idp: Idp) -> Iterator[Server]:
    dd = tmp_path_factory.mktemp("llng-node") / "node"
    init(dd)
    for user, seed in SEEDS.items():
        cli(dd, "user", "add", user)
        cli(dd, "method", "add", user, "totp", "--secret", seed, "--no-qr")
    key = cli(dd, "apikey", "create", "lemonldap", "--scope", "adapter").stdout.strip()
    key_file = idp.folder / "adapter.key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    with server(dd) as srv:
        idp.config.write_text(
            f'[adapter]\nnode_url = "{srv.url}"\napi_key_file = "adapter.key"\n'
            f'[lemonldap]\nini = "{idp.folder}/lemonldap-ng.ini"\nprotect = ["app.example.com"]\n'
        )
        yield srv


def adapter(idp: Idp, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    return cli(idp.folder, "adapter", *args, "--config", str(idp.config), expect=expect)


def code(user: str, used: set[str]) -> str:
    """A code of ``user``'s not used yet (a code is taken once: wait for the next step)."""
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
    used: set[str] = set()

    def asked() -> bool:  # LemonLDAP::NG reads its configuration again within a second or so
        return idp.sign_in("dwho", None)[0] == "/openmfa2fcheck"

    wait_for(asked, "LemonLDAP::NG to ask for OpenMFA's code", 30)
    # A wrong code: no session (PE_BADOTP, 96).
    action, cookie, error = idp.sign_in("dwho", "123456")
    assert (action, cookie, error) == ("/openmfa2fcheck", "", "96")
    # The right code: a session cookie for the whole domain.
    right = code("dwho", used)
    _, cookie, error = idp.sign_in("dwho", right)
    assert cookie.startswith("lemonldap=") and "domain=.example.com" in cookie, cookie
    # The same code again (replayed): refused.
    assert idp.sign_in("dwho", right)[1:] == ("", "96")

    # The export: the registration as data, the key redacted unless asked.
    key = (idp.folder / "adapter.key").read_text().strip()
    exported = adapter(idp, "export", "lemonldap").stdout
    data = json.loads(exported)
    assert key not in exported and data["name"] == "openmfa" and data["required"] is True
    assert "(redacted)@127.0.0.1" in data["instance"]["over"]["rest2fVerifyUrl"]
    assert key in adapter(idp, "export", "lemonldap", "--with-secrets").stdout

    # The last second factor cannot be unregistered while one is required.
    refused = adapter(idp, "unregister", "lemonldap", expect=1)
    assert "password alone" in refused.stderr and "policy off" in refused.stderr
    assert "openmfa: registered" in adapter(idp, "status", "lemonldap").stdout
    _, cookie, _ = idp.sign_in("rtyler", code("rtyler", used))
    assert cookie.startswith("lemonldap="), "still asked and accepted after the refusal"


def test_with_openmfa_down_nobody_signs_in(idp: Idp, node: Server) -> None:
    """The node stops: LemonLDAP::NG cannot reach it and refuses (fails closed)."""
    node.stop()
    action, cookie, error = idp.sign_in("dwho", oathtool("--totp", "-b", SEEDS["dwho"]))
    assert action == "/openmfa2fcheck" and cookie == "" and error != "", error
