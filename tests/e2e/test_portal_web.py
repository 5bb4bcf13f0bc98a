"""The User Portal without a browser: mounted inside ``openmfa serve`` (``[portal] enabled``, a
single host), a person signed in through its forms with httpx, the session id renewed at each
step, a session ended by sign-out not usable again, bad input answered on the page."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx

from .helpers import OPENMFA, cli, free_port, init, oathtool, server

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"
PASSWORD = "a long portal password"
TOKEN_HEX = b"12345678901234567890".hex()


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_the_portal_mounted_in_serve_signs_a_person_in_and_out(tmp_path: Path) -> None:
    dd = tmp_path / "node"
    init(dd)
    (dd / "portal.toml").write_text('[portal]\nlanguages = ["nl", "en"]\nidle_minutes = 5\n')
    with (dd / "server.toml").open("a") as f:
        f.write(
            '\n[portal]\nenabled = true\nprefix = "/self-service"\nweb_config = "portal.toml"\n'
        )
    cli(dd, "user", "add", "finn")
    subprocess.run(
        [OPENMFA, "user", "set-password", "finn", "--password-stdin", "--data-dir", str(dd)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    cli(dd, "method", "add", "finn", "totp", "--secret", SEED, "--no-qr")
    with server(dd, port=free_port()) as node, httpx.Client(base_url=node.url) as h:
        first = h.get("/self-service/sign-in")
        assert first.status_code == 200
        assert '<html lang="nl">' in first.text  # web_config's first language
        anonymous = h.cookies["openmfa-portal"]
        # Bad input: said on the page, nothing else.
        empty = h.post("/self-service/sign-in", data={"csrf": csrf(first), "user": ""})
        assert empty.status_code == 200 and "Typ uw gebruikersnaam" in empty.text
        step = h.post(
            "/self-service/sign-in",
            data={"csrf": csrf(first), "user": "finn", "password": PASSWORD},
        )
        assert step.status_code == 303, step.text
        assert step.headers["location"] == "/self-service/second-factor"
        ticketed = h.cookies["openmfa-portal"]
        assert ticketed != anonymous  # a new session id at each step (fixation)
        page = h.get("/self-service/second-factor")
        done = h.post(
            "/self-service/second-factor",
            data={"csrf": csrf(page), "code": oathtool("--totp", "-b", SEED)},
        )
        assert done.status_code == 303 and done.headers["location"] == "/self-service/methods"
        signed_in = h.cookies["openmfa-portal"]
        assert signed_in not in (anonymous, ticketed)
        methods = h.get("/self-service/methods")
        assert methods.status_code == 200 and "finn" in methods.text
        # A hardware token from the inventory, claimed by its serial and the code it shows.
        csv = tmp_path / "tokens.csv"
        csv.write_text(f"serial,secret,type,digits\nFOB-7,hex:{TOKEN_HEX},hotp,6\n")
        cli(dd, "token", "import", str(csv))
        form = h.get("/self-service/token")
        assert form.status_code == 200 and "Serienummer" in form.text
        wrong = h.post(
            "/self-service/token", data={"csrf": csrf(form), "serial": "FOB-7", "code": "000000"}
        )
        assert wrong.status_code == 200 and "horen niet bij een token" in wrong.text
        claimed = h.post(
            "/self-service/token",
            data={"csrf": csrf(wrong), "serial": "FOB-7", "code": oathtool(TOKEN_HEX)},
        )
        assert claimed.status_code == 303 and claimed.headers["location"].endswith("/methods")
        methods = h.get("/self-service/methods")
        assert "token FOB-7" in methods.text and "Uw hardwaretoken is toegevoegd" in methods.text
        assert "FOB-7\thotp/6\tSHA1\tfinn" in cli(dd, "token", "list").stdout
        # An old session id is worth nothing now.
        with httpx.Client(base_url=node.url, cookies={"openmfa-portal": ticketed}) as old:
            assert old.get("/self-service/methods").headers["location"].endswith("/sign-in")
        out = h.post("/self-service/sign-out", data={"csrf": csrf(methods)})
        assert out.status_code == 303
        with httpx.Client(base_url=node.url, cookies={"openmfa-portal": signed_in}) as old:
            assert old.get("/self-service/methods").headers["location"].endswith("/sign-in")
    # The in-memory key is nobody's to list.
    assert "portal (in serve)" not in cli(dd, "apikey", "list").stdout
