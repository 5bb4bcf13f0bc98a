"""The User Portal without a browser: mounted inside ``openmfa serve`` (``[portal] enabled``, a
single host), a person signed in through its forms with httpx, the session id renewed at each
step, a session ended by sign-out not usable again, bad input answered on the page; and the
administration console mounted beside it (``[console] enabled``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .helpers import Phone, cli, free_port, init, oathtool, person, server

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"
OPERATOR_SEED = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"
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
            '[console]\nenabled = true\nprefix = "/admin"\n'
        )
    person(dd, "finn", PASSWORD, SEED)
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
        assert (
            "Hardwaretoken FOB-7" in methods.text
            and "Uw hardwaretoken is toegevoegd" in methods.text
        )
        assert "FOB-7\thotp/6\tSHA1\tfinn" in cli(dd, "token", "list").stdout
        # An old session id is worth nothing now.
        with httpx.Client(base_url=node.url, cookies={"openmfa-portal": ticketed}) as old:
            assert old.get("/self-service/methods").headers["location"].endswith("/sign-in")
        out = h.post("/self-service/sign-out", data={"csrf": csrf(methods)})
        assert out.status_code == 303
        with httpx.Client(base_url=node.url, cookies={"openmfa-portal": signed_in}) as old:
            assert old.get("/self-service/methods").headers["location"].endswith("/sign-in")
        # The console in the same process ([console] enabled): olga, of the helpdesk, signs in
        # with a code (her group's rule allows one) and is audited under her own name.
        person(dd, "olga", PASSWORD, OPERATOR_SEED)
        cli(dd, "user", "role", "olga", "helpdesk")
        cli(dd, "user", "group", "add", "olga", "ops")
        cli(dd, "policy", "add", "ops-codes", "--group", "ops", "--methods", "totp")
        page = h.get("/admin/sign-in")
        assert page.status_code == 200 and 'action="/admin/sign-in"' in page.text
        step = h.post(
            "/admin/sign-in", data={"csrf": csrf(page), "user": "olga", "password": PASSWORD}
        )
        assert step.status_code == 303 and step.headers["location"] == "/admin/second-factor"
        page = h.get("/admin/second-factor")
        code = oathtool("--totp", "-b", OPERATOR_SEED)
        done = h.post("/admin/second-factor", data={"csrf": csrf(page), "code": code})
        assert done.status_code == 303 and done.headers["location"] == "/admin/dashboard"
        found = h.get("/admin/users", params={"q": "fi"})
        assert found.status_code == 200 and 'href="/admin/users/finn"' in found.text
    assert "console (in serve)/olga" in cli(dd, "audit", "--limit", "50").stdout
    # The in-memory keys are nobody's to list.
    listed = cli(dd, "apikey", "list").stdout
    assert "portal (in serve)" not in listed and "console (in serve)" not in listed


@dataclass
class Node:
    dd: Path
    url: str

    def person(self, name: str, seed: str = SEED) -> None:
        """A user with a password and an authenticator app."""
        person(self.dd, name, PASSWORD, seed)

    def portal(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/portal", headers={"Accept-Language": "en"})


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One node with the portal mounted (English first, no attempt limit in the way) and the
    mobile service in it; ``[portal] bypass_seconds`` is left at 0 (no bypass offered)."""
    dd = tmp_path_factory.mktemp("portal-node") / "node"
    init(dd)
    port = free_port()
    (dd / "portal.toml").write_text("[portal]\nattempts_per_minute = 1000\n")
    with (dd / "server.toml").open("a") as f:
        f.write(
            f'\n[mobile]\nenabled = true\npublic_url = "http://127.0.0.1:{port}/mobile"\n'
            '[portal]\nenabled = true\nweb_config = "portal.toml"\n'
        )
    with server(dd, port=port) as srv:
        yield Node(dd, srv.url)


def signed_in_to_second_step(h: httpx.Client, user: str) -> httpx.Response:
    """The password given: the second-factor page."""
    first = h.get("/sign-in")
    step = h.post("/sign-in", data={"csrf": csrf(first), "user": user, "password": PASSWORD})
    assert step.status_code == 303 and step.headers["location"].endswith("/second-factor")
    page = h.get("/second-factor")
    assert page.status_code == 200, page.text
    return page


def test_a_person_locked_by_wrong_codes_is_told_so_and_sent_back_to_the_start(node: Node) -> None:
    """Ten wrong codes lock the account; the eleventh answer is a page that says so (it was a
    500: the second-factor page rendered without its variables once the ticket was gone)."""
    node.person("lara")
    with node.portal() as h:
        page = signed_in_to_second_step(h, "lara")
        for _ in range(10):
            page = h.post("/second-factor", data={"csrf": csrf(page), "code": "000000"})
            assert page.status_code == 200 and "That code is not right" in page.text
        locked = h.post("/second-factor", data={"csrf": csrf(page), "code": "000000"})
        assert locked.status_code == 200, locked.text
        assert "Your account is locked" in locked.text
        # Back at the start: the sign-in form, not the code form.
        assert 'action="/portal/sign-in"' in locked.text and 'name="code"' not in locked.text
        assert h.get("/second-factor").headers["location"].endswith("/sign-in")
        # In Dutch too.
        again = h.post(
            "/sign-in",
            data={"csrf": csrf(locked), "user": "lara", "password": PASSWORD},
            headers={"Accept-Language": "nl"},
        )
        assert again.status_code == 200 and "Uw account is geblokkeerd" in again.text


def test_a_push_is_offered_only_with_the_mobile_app_and_each_refusal_is_a_sentence(
    node: Node, tmp_path: Path
) -> None:
    """No mobile app: no push button, and a push asked for all the same is a sentence. With the
    app: a second press within the minimum gap, a push reported as not theirs, then push
    blocked: each a sentence on the second-factor page (each was a 500)."""
    node.person("nico")
    with node.portal() as h:
        page = signed_in_to_second_step(h, "nico")
        assert (
            "Send a push to my phone" not in page.text and 'action="/portal/push"' not in page.text
        )
        sent = h.post("/push", data={"csrf": csrf(page)})
        assert sent.status_code == 200, sent.text
        assert "no mobile app" in sent.text
        assert 'name="code"' in sent.text
        nl = h.post("/push", data={"csrf": csrf(sent)}, headers={"Accept-Language": "nl"})
        assert nl.status_code == 200 and "geen mobiele app" in nl.text
    node.person("pia")
    code = json.loads(cli(node.dd, "device", "activate", "pia", "--json").stdout)
    phone = Phone(tmp_path / "pia.json")
    phone.run("activate", code["url"], code["code"])
    with node.portal() as h:
        page = signed_in_to_second_step(h, "pia")
        assert "Send a push to my phone" in page.text
        first = h.post("/push", data={"csrf": csrf(page)})
        assert first.status_code == 303 and first.headers["location"].endswith("/push")
        page = h.get("/push")
        again = h.post("/push", data={"csrf": csrf(page)})  # pressed again at once
        assert again.status_code == 200, again.text
        assert "Too many pushes just now" in again.text and 'name="code"' in again.text
        (request,) = phone.pending(wait=20)
        assert phone.run("deny", str(request["id"]), "--fraud").stdout.strip() == "fraud"
        told = h.post("/push/wait", data={"csrf": csrf(again)})  # the page's button, no script
        assert told.status_code == 200 and "reported the push as not yours" in told.text
        blocked = h.post("/push", data={"csrf": csrf(told)})
        assert blocked.status_code == 200 and "Push is blocked" in blocked.text
        nl = h.post("/push", data={"csrf": csrf(blocked)}, headers={"Accept-Language": "nl"})
        assert nl.status_code == 200 and "geblokkeerd" in nl.text
        # A code still signs them in.
        done = h.post(
            "/second-factor", data={"csrf": csrf(nl), "code": oathtool("--totp", "-b", SEED)}
        )
        assert done.status_code == 303 and done.headers["location"].endswith("/methods")


def test_the_pages_promise_nothing_that_is_not_there(node: Node) -> None:
    """The phone number is not for codes (none are sent); the password cannot be changed here
    (the helpdesk is told instead); no bypass is offered where the node gives none
    (``bypass_seconds = 0``: the node says so) and, asked for all the same, a sentence;
    Dutch pages in Dutch, the names the node gives methods too."""
    node.person("olga")
    with node.portal() as h:
        page = signed_in_to_second_step(h, "olga")
        done = h.post(
            "/second-factor", data={"csrf": csrf(page), "code": oathtool("--totp", "-b", SEED)}
        )
        assert done.status_code == 303
        profile = h.get("/profile")
        assert profile.status_code == 200
        assert "text messages" not in profile.text and "calls with a code" not in profile.text
        assert "No codes are sent to it" in profile.text
        assert "Ask for a one-time bypass" not in profile.text  # the node gives none
        asked = h.post("/bypass", data={"csrf": csrf(profile)})
        assert asked.status_code == 200, asked.text
        assert "A one-time bypass is not offered here" in asked.text
        assert "Ask for a one-time bypass" not in asked.text
        assert "Ask for a one-time bypass" not in h.get("/profile").text
        sign_ins = h.get("/sign-ins")
        assert "change your password" not in sign_ins.text
        assert "tell your helpdesk" in sign_ins.text
        # In Dutch: the node's own names of methods ("backup codes", "token FOB-5") too.
        codes = h.post("/backup-codes", data={"csrf": csrf(sign_ins)})
        assert codes.status_code == 303
        assert h.get("/backup-codes").status_code == 200
        csv = node.dd / "olga-tokens.csv"
        csv.write_text(f"serial,secret,type,digits\nFOB-5,hex:{TOKEN_HEX},hotp,6\n")
        cli(node.dd, "token", "import", str(csv))
        cli(node.dd, "token", "assign", "FOB-5", "olga")
        nl = h.get("/methods", headers={"Accept-Language": "nl"})
        assert "Back-upcodes (nog 10)" in nl.text and "Hardwaretoken FOB-5" in nl.text
        assert "backup codes" not in nl.text.lower() and "token FOB-5" not in nl.text.replace(
            "Hardwaretoken FOB-5", ""
        )
        en = h.get("/methods")
        assert "Backup codes (10 left)" in en.text and "Hardware token FOB-5" in en.text
        for path in ("/profile", "/sign-ins"):
            text = h.get(path, headers={"Accept-Language": "nl"}).text
            assert "sms" not in text and "wijzig dan uw wachtwoord" not in text, path
