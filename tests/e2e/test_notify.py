"""Security notices through a real mail server (a private exim4 on loopback): a method added
mails the person in the configured language with what happened, when and from where; with the
mail server stopped, a sign-in is answered as ever and the notice of a change made meanwhile
waits (in /metrics, said once in the log) and arrives once the server is back."""

from __future__ import annotations

import os
import re
import subprocess

import httpx
import pytest

from .helpers import OPENMFA, cli, init, oathtool, secret_of, server, wait_for
from .mail_server import exim, usable

pytestmark = pytest.mark.skipif(bool(usable()), reason=usable() or "exim runs")

NOTIFY = """
[notify]
host = "127.0.0.1"
port = {port}
security = "none"
sender = "mfa@openmfa.test"
security_mailbox = "security@example.org"
language = "nl"
"""


def _metric(url: str, name: str, channel: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    found = re.search(rf'^{name}{{channel="{channel}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else -1.0


def test_notices_reach_the_person_and_wait_out_a_stopped_mail_server(tmp_path: object) -> None:
    from pathlib import Path

    dd = Path(str(tmp_path)) / "node"
    token = init(dd)
    with exim() as mail:
        cfg = dd / "server.toml"
        cfg.write_text(cfg.read_text() + NOTIFY.format(port=mail.port))
        cli(dd, "user", "add", "alice", "--email", "alice@example.org", "--display-name", "Alice")
        with server(dd) as srv:
            added = cli(dd, "method", "add", "alice", "totp", "--no-qr").stdout
            secret = secret_of(added)
            method_id = re.search(r"\b(m[0-9a-f]{6,})\b", added)
            wait_for(lambda: mail.messages("alice@example.org"), "the new method's notice")
            (msg,) = mail.messages("alice@example.org")
            assert msg["From"] == "mfa@openmfa.test"
            assert "Er is een aanmeldmethode aan uw account toegevoegd" in msg["Subject"]
            body = msg.get_content()
            assert body.startswith("Beste Alice,")
            assert "Vanaf: cli" in body and "Account: alice" in body
            assert re.search(r"Wanneer: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", body)
            assert "Was u dit niet" in body
            if method_id:
                assert method_id.group(1) in body
            wait_for(lambda: mail.messages("security@example.org"), "the security mailbox's copy")

            mail.stop()  # the organisation's mail server is down
            changed = subprocess.run(
                [OPENMFA, "user", "set-password", "alice", "--password-stdin"],
                input="a new password 42\n",
                capture_output=True,
                text=True,
                env={**os.environ, "OPENMFA_DATA_DIR": str(dd)},
                timeout=60,
                check=True,
            )
            assert "alice" in changed.stdout
            wait_for(
                lambda: _metric(srv.url, "openmfa_notify_failed_attempts_total", "person") >= 2,
                "two tries that found the mail server down",
            )
            assert _metric(srv.url, "openmfa_notify_queued", "person") == 1
            assert _metric(srv.url, "openmfa_notify_oldest_queued_seconds", "person") >= 0
            # A sign-in meanwhile is answered as ever: nothing of it waits for the mail.
            answer = httpx.post(
                srv.url + "/v1/authenticate",
                json={"user": "alice", "code": oathtool("--totp", "-b", secret)},
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            ).json()
            assert answer["accepted"] is True
            log = srv.log.read_text()
            down = f"notices (person): the mail server 127.0.0.1:{mail.port} cannot take them"
            assert log.count(down) == 1, log  # said once per outage, not once per try

            mail.start()  # back, on the same port
            wait_for(
                lambda: len(mail.messages("alice@example.org")) == 2,
                "the password notice after the mail server came back",
                seconds=120,
            )
            late = mail.messages("alice@example.org")[-1]
            assert "Uw wachtwoord is gewijzigd" in late["Subject"]
            wait_for(
                lambda: _metric(srv.url, "openmfa_notify_queued", "person") == 0,
                "nothing queued",
            )
            assert f"notices (person): the mail server 127.0.0.1:{mail.port} takes them again" in (
                srv.log.read_text()
            )
            # a verification is not a notice: the person got the two, no more
            assert len(mail.messages("alice@example.org")) == 2


def test_a_person_who_reads_the_portal_in_dutch_is_mailed_in_dutch(tmp_path: object) -> None:
    """``[notify] language = "en"``; Alice's browser asks for Dutch. Signed in at the portal
    (which tells the node her language), she renews her backup codes: her mail is in Dutch,
    the security mailbox's copy in English; it says where from (her browser's address and
    name, through the portal)."""
    from pathlib import Path

    dd = Path(str(tmp_path)) / "node"
    init(dd)
    seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"
    password = "correct horse battery"
    (dd / "portal.toml").write_text("[portal]\nattempts_per_minute = 1000\n")
    with exim() as mail:
        cfg = dd / "server.toml"
        cfg.write_text(
            cfg.read_text()
            + NOTIFY.format(port=mail.port).replace('language = "nl"', 'language = "en"')
            + '[portal]\nenabled = true\nweb_config = "portal.toml"\n'
        )
        cli(dd, "user", "add", "alice", "--email", "alice@example.org", "--display-name", "Alice")
        subprocess.run(
            [OPENMFA, "user", "set-password", "alice", "--password-stdin", "--data-dir", str(dd)],
            input=password + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        cli(dd, "method", "add", "alice", "totp", "--secret", seed, "--no-qr")
        with server(dd) as srv:
            portal = httpx.Client(
                base_url=srv.url + "/portal",
                headers={"Accept-Language": "nl-NL,nl;q=0.9", "User-Agent": FIREFOX_ANDROID},
            )
            with portal as h:
                form = h.get("/sign-in")
                h.post(
                    "/sign-in",
                    data={"csrf": _csrf(form), "user": "alice", "password": password},
                )
                step = h.get("/second-factor")
                code = oathtool("--totp", "-b", seed)
                done = h.post("/second-factor", data={"csrf": _csrf(step), "code": code})
                assert done.status_code == 303, done.text
                methods = h.get("/methods")
                assert methods.status_code == 200 and 'lang="nl"' in methods.text
                renewed = h.post("/backup-codes", data={"csrf": _csrf(methods)})
                assert renewed.status_code == 303, renewed.text
            wait_for(lambda: mail.messages("alice@example.org"), "the new codes' notice")
            (msg,) = mail.messages("alice@example.org")
            assert "Er is een aanmeldmethode aan uw account toegevoegd" in msg["Subject"]
            assert msg.get_content().startswith("Beste Alice,")
            # where from: the browser's address and name, through the portal (issue 36)
            vanaf = [x for x in msg.get_content().splitlines() if x.startswith("Vanaf")]
            assert vanaf == ["Vanaf: 127.0.0.1 (Firefox op Android), via het portaal"]
            wait_for(lambda: mail.messages("security@example.org"), "the mailbox's copy")
            (copy,) = mail.messages("security@example.org")
            assert "A sign-in method was added to your account" in copy["Subject"]


FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0"


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)
