"""The administration console through a real node runtime (both databases; the node's SDK app
in process, the console's SDK client reaching it over ASGI): a helpdesk operator signs in
(password, then a code where a policy rule allows one), finds a locked user among many, unlocks
them, issues an access code that then verifies for that user; an admin-only action (a role) is
refused by the node and said as a sentence in English and Dutch; a form without the CSRF token
is refused; an action after the sign-in grew old asks for a new sign-in; the audit page and its
CSV show the operator's name; who may not sign in is told why."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from openmfa.config import Config
from openmfa.console.app import create_app as console_app
from openmfa.console.config import load
from openmfa.core.policy import Rule
from openmfa.core.totp import totp
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.groups import Groups
from openmfa.node.passwords import set_password
from openmfa.node.policy_rules import PolicyRules
from openmfa.node.portal import PortalTokens
from openmfa.node.roles import Roles
from openmfa.node.tokens import Tokens, read_file
from openmfa.sdk.app import create_app as sdk_app
from openmfa.store import tables as t
from openmfa.store.database import Store
from openmfa.wiring import NodeRuntime

PASSWORD = "correct horse"
SEEDS = {
    "hana": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    "nora": "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U",
    "otto": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
}
Scenario = Callable[[httpx.AsyncClient, httpx.AsyncClient], Awaitable[None]]


def setup(store: Store, config: Config) -> tuple[str, str]:
    """Operators hana (helpdesk) and otto (auditor), who may sign in with a code, and nora
    (admin, no code rule); pia
    locked; 60 more users; returns the console's and an admin's key."""
    accounts = Accounts(store, config)
    for name in (*SEEDS, "pia", "piet"):
        accounts.add_user(name, email=f"{name}@example.org")
        set_password(store, accounts, name, PASSWORD)
    for name, seed in SEEDS.items():
        accounts.enroll(name, "totp", secret=seed)
    for i in range(60):
        accounts.add_user(f"user{i:03d}")
    roles = Roles(store, accounts, PortalTokens(store, config))
    roles.set("hana", "helpdesk")
    roles.set("nora", "admin")
    roles.set("otto", "auditor")
    Groups(store, accounts).add("hana", "helpdesk-team")
    Groups(store, accounts).add("otto", "helpdesk-team")
    PolicyRules(store).add(Rule("helpdesk-codes", groups=("helpdesk-team",), methods=("totp",)))
    with store.write() as conn:  # pia locked, as the authenticator does it
        conn.execute(
            t.user_state.update()
            .where(t.user_state.c.user_id == accounts.user_id("pia"))
            .values(locked_until=time.time() + 600, failures=5)
        )
    return ApiKeys(store).create("console1", "console"), ApiKeys(store).create("ops", "admin")


def run(store: Store, config: Config, tmp_path: Path, key: str, scenario: Scenario) -> None:
    (tmp_path / "console.toml").write_text(
        f'[console]\nnodes = ["http://node"]\napi_key = "{key}"\nsecure = "never"\n'
        "attempts_per_minute = 1000\n"
    )
    cfg = load(tmp_path / "console.toml")

    async def main() -> None:
        node = NodeRuntime(store, config, radius_listen="")
        await node.start()
        try:
            to_node = httpx.ASGITransport(app=sdk_app(node))
            app = console_app(cfg, transport=to_node)
            async with (
                httpx.AsyncClient(transport=to_node, base_url="http://node") as n,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://console.test"
                ) as c,
            ):
                await scenario(c, n)
        finally:
            await node.stop()

    asyncio.run(main())


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def sign_in(c: httpx.AsyncClient, name: str, code: str | None = None) -> httpx.Response:
    page = await c.get("/console/sign-in")
    r = await c.post(
        "/console/sign-in", data={"csrf": csrf(page), "user": name, "password": PASSWORD}
    )
    if r.status_code != 303 or code is None:
        return r
    assert r.headers["location"] == "/console/second-factor"
    page = await c.get("/console/second-factor")
    return await c.post("/console/second-factor", data={"csrf": csrf(page), "code": code})


def code_of(name: str) -> str:
    return totp(base64.b32decode(SEEDS[name]), time.time())


def test_a_helpdesk_operators_day(store: Store, config: Config, tmp_path: Path) -> None:
    key, admin_key = setup(store, config)
    admin = {"authorization": f"Bearer {admin_key}"}

    async def scenario(c: httpx.AsyncClient, node: httpx.AsyncClient) -> None:
        # Signed out: the pages send the browser to the sign-in.
        r = await c.get("/console/users")
        assert r.status_code == 303 and r.headers["location"] == "/console/sign-in"
        first_code = code_of("hana")
        r = await sign_in(c, "hana", first_code)
        assert r.status_code == 303 and r.headers["location"] == "/console/dashboard", r.text
        dash = await c.get("/console/dashboard")
        assert dash.status_code == 200 and "<td>console</td><td>accepted</td>" in dash.text
        assert "unsafe-inline" not in dash.headers["content-security-policy"]
        assert "<script>" not in dash.text  # no inline script

        # Search by the start of the name, paged by the node.
        found = await c.get("/console/users", params={"q": "pi"})
        assert ">pia</a>" in found.text and ">piet</a>" in found.text
        assert ">hana</a>" not in found.text and "Locked" in found.text
        first = await c.get("/console/users", params={"q": "user"})
        assert first.text.count('href="/console/users/user') == 25
        more = re.search(r'href="/console/users\?q=user&amp;[^"]*after=([^"]+)"', first.text)
        assert more and more.group(1) == "user024"
        second = await c.get("/console/users", params={"q": "user", "after": "user024"})
        assert ">user025</a>" in second.text and ">user024</a>" not in second.text
        # By state and group, narrowed by the node.
        locked = await c.get("/console/users", params={"state": "locked"})
        assert ">pia</a>" in locked.text and ">piet</a>" not in locked.text
        team = await c.get("/console/users", params={"group": "helpdesk-team", "q": ""})
        assert ">hana</a>" in team.text and ">otto</a>" in team.text and ">pia</a>" not in team.text
        bad = await c.get("/console/users", params={"state": "sleeping"})
        assert bad.status_code == 400 and "That search could not be read." in bad.text
        # By exact email address (sealed at rest: the node's keyed index).
        found = await c.get("/console/users", params={"email": "Piet@Example.org"})
        assert ">piet</a>" in found.text and ">pia</a>" not in found.text
        assert "next" not in found.text.lower().split("</table>")[1]

        # pia: locked; unlocked by the operator.
        page = await c.get("/console/users/pia")
        assert "Locked until" in page.text and "5 failed attempts" in page.text
        r = await c.post("/console/users/pia/unlock", data={"csrf": csrf(page)})
        assert r.status_code == 303 and r.headers["location"] == "/console/users/pia"
        page = await c.get("/console/users/pia")
        assert "The user is unlocked." in page.text and "Active" in page.text

        # An access code, shown once, then it verifies for pia.
        r = await c.post(
            "/console/users/pia/access-code", data={"csrf": csrf(page), "minutes": "30"}
        )
        assert r.status_code == 303
        page = await c.get("/console/users/pia")
        shown = re.search(r'id="access-code">([^<]+)<', page.text)
        assert shown, page.text
        again = await c.get("/console/users/pia")
        assert 'id="access-code"' not in again.text
        r = await node.post(
            "/v1/authenticate", json={"user": "pia", "code": shown.group(1)}, headers=admin
        )
        assert r.json()["accepted"] is True, r.text

        # An admin-only action: refused by the node (403), said as a sentence, never a 5xx.
        r = await c.post("/console/users/pia/role", data={"csrf": csrf(page), "role": "admin"})
        assert r.status_code == 403 and "your role does not allow it" in r.text
        assert "has role &#39;helpdesk&#39;" in r.text
        r = await c.post(
            "/console/users/pia/role",
            data={"csrf": csrf(page), "role": "admin"},
            headers={"accept-language": "nl"},
        )
        assert r.status_code == 403 and "uw rol staat het niet toe" in r.text
        # helpdesk acts on people, not on operators (the node's rule, as a sentence).
        r = await c.post("/console/users/nora/unlock", data={"csrf": csrf(page)})
        assert r.status_code == 403 and "your role does not allow it" in r.text
        # A form without this session's token, or from another site: refused here.
        r = await c.post("/console/users/pia/unlock", data={"csrf": "x" * 43})
        assert r.status_code == 403 and "did not come from this console" in r.text
        r = await c.post(
            "/console/users/pia/unlock",
            data={"csrf": csrf(page)},
            headers={"origin": "https://evil.example"},
        )
        assert r.status_code == 403
        r = await c.post("/console/users/pia/bypass", data={"csrf": csrf(page), "minutes": "x"})
        assert r.status_code == 400 and "number of minutes" in r.text

        # The audit shows who did it: the console's key and the operator's name.
        audit = await c.get("/console/audit", params={"user": "pia", "since": "24h"})
        assert "user.unlock" in audit.text and "console1/hana" in audit.text
        ok = await c.get("/console/audit", params={"user": "pia", "result": "rejected"})
        assert "user.unlock" not in ok.text
        export = await c.get("/console/audit.csv", params={"user": "pia"})
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        assert "attachment" in export.headers["content-disposition"]
        lines = export.text.splitlines()
        assert lines[0].startswith("id,at,action,user,client")
        assert any(",user.unlock,pia,console1/hana,ok," in line for line in lines)
        r = await c.get("/console/audit", params={"result": "nonsense"})
        assert r.status_code == 400 and "filter could not be read" in r.text

        # An action after the sign-in grew old: sign in again first, then back to the page.
        console = c._transport.app.state.console  # type: ignore[attr-defined]
        (session,) = [s for s in console.sessions._by_id.values() if s.signed_in]
        session.signed_in_at -= 3600
        r = await c.post(
            "/console/users/pia/unlock", data={"csrf": csrf(page), "back": "/users/pia"}
        )
        assert r.status_code == 303 and r.headers["location"] == "/console/sign-in"
        assert "needs a recent sign-in" in (await c.get("/console/sign-in")).text
        r = await sign_in(c, "hana", first_code)
        assert r.status_code == 200 and "used already" in r.text  # the code used: a replay

        # Signing out ends the session.
        page = await c.get("/console/users")
        r = await c.post("/console/sign-out", data={"csrf": csrf(page)})
        assert r.status_code == 303
        assert (await c.get("/console/users")).status_code == 303

    run(store, config, tmp_path, key, scenario)


def test_who_may_not_sign_in_is_told_why(store: Store, config: Config, tmp_path: Path) -> None:
    key, _ = setup(store, config)

    async def scenario(c: httpx.AsyncClient, node: httpx.AsyncClient) -> None:
        r = await sign_in(c, "piet")  # a right password, but no role
        assert r.status_code == 200 and "no role in the console" in r.text
        form = {"csrf": csrf(r), "user": "hana", "password": "x"}
        r = await c.post("/console/sign-in", data=form)
        assert "user name or password is not right" in r.text
        # nora is an admin, but no rule lets her sign in with a code: a push, or nothing.
        r = await sign_in(c, "nora")
        second = await c.get("/console/second-factor")
        assert "Verification code" not in second.text
        r = await c.post(
            "/console/second-factor", data={"csrf": csrf(second), "code": code_of("nora")}
        )
        assert r.status_code == 200 and "A code cannot sign you in" in r.text
        nl = await c.get("/console/sign-in", headers={"accept-language": "nl-NL"})
        assert "Aanmelden bij de console" in nl.text and 'lang="nl"' in nl.text

    run(store, config, tmp_path, key, scenario)


def test_an_auditor_reads_and_is_refused_every_action(
    store: Store, config: Config, tmp_path: Path
) -> None:
    key, _ = setup(store, config)

    async def scenario(c: httpx.AsyncClient, node: httpx.AsyncClient) -> None:
        r = await sign_in(c, "otto", code_of("otto"))
        assert r.status_code == 303, r.text
        page = await c.get("/console/users/pia")
        assert page.status_code == 200 and "Locked until" in page.text
        for path, form in (
            ("/console/users/pia/unlock", {}),
            ("/console/users/pia/bypass", {"minutes": "5"}),
            ("/console/users/pia/access-code", {"minutes": "60"}),
            ("/console/users/pia/devices/nothing/revoke", {}),
        ):
            r = await c.post(path, data={"csrf": csrf(page), **form})
            assert r.status_code == 403 and "your role does not allow it" in r.text, path
            assert "role &#39;auditor&#39;" in r.text
        assert "Locked until" in (await c.get("/console/users/pia")).text
        assert (await c.get("/console/audit.csv")).status_code == 200
        r = await c.get("/console/users/nobody")
        assert r.status_code == 404 and "no such user" in r.text

    run(store, config, tmp_path, key, scenario)


def test_a_bypass_and_a_device_that_is_not_there(
    store: Store, config: Config, tmp_path: Path
) -> None:
    key, _ = setup(store, config)

    async def scenario(c: httpx.AsyncClient, node: httpx.AsyncClient) -> None:
        await sign_in(c, "hana", code_of("hana"))
        page = await c.get("/console/users/piet")
        r = await c.post("/console/users/piet/bypass", data={"csrf": csrf(page), "minutes": "5"})
        assert r.status_code == 303
        page = await c.get("/console/users/piet")
        assert "one-time bypass is open" in page.text and "Bypass open until" in page.text
        r = await c.post("/console/users/piet/devices/nothing/revoke", data={"csrf": csrf(page)})
        assert r.status_code == 404 and "no such user or device" in r.text

    run(store, config, tmp_path, key, scenario)


def test_an_admin_exports_and_erases_a_user_the_helpdesk_may_not(
    store: Store, config: Config, tmp_path: Path
) -> None:
    key, _ = setup(store, config)
    Groups(store, Accounts(store, config)).add("nora", "helpdesk-team")  # a code will do

    async def scenario(c: httpx.AsyncClient, node: httpx.AsyncClient) -> None:
        await sign_in(c, "hana", code_of("hana"))
        page = await c.get("/console/users/piet")
        for path, form in (("export", {}), ("erase", {"confirm": "piet"})):
            r = await c.post(f"/console/users/piet/{path}", data={"csrf": csrf(page), **form})
            assert r.status_code == 403 and "your role does not allow it" in r.text, path
        await c.post("/console/sign-out", data={"csrf": csrf(page)})
        assert (await sign_in(c, "nora", code_of("nora"))).status_code == 303
        page = await c.get("/console/users/piet")
        r = await c.post("/console/users/piet/export", data={"csrf": csrf(page)})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        assert "piet-personal-data.json" in r.headers["content-disposition"]
        assert r.json()["user"]["email"] == "piet@example.org"
        r = await c.post("/console/users/piet/erase", data={"csrf": csrf(page), "confirm": "pie"})
        assert r.status_code == 400 and "Type the user&#39;s name exactly" in r.text
        assert (await c.get("/console/users/piet")).status_code == 200  # nothing erased
        r = await c.post("/console/users/piet/erase", data={"csrf": csrf(page), "confirm": "piet"})
        assert r.status_code == 303 and r.headers["location"] == "/console/users"
        assert "audit records are kept under a pseudonym" in (await c.get("/console/users")).text
        assert (await c.get("/console/users/piet")).status_code == 404

    run(store, config, tmp_path, key, scenario)


def test_the_token_inventory_a_helpdesk_assigns_and_only_an_admin_removes(
    store: Store, config: Config, tmp_path: Path
) -> None:
    key, _ = setup(store, config)
    accounts = Accounts(store, config)
    csv = "serial,secret,type,digits\n" + "".join(
        f"FOB-{i},hex:{(b'%020d' % i).hex()},hotp,6\n" for i in range(3)
    )
    Tokens(store, config, accounts).import_records(read_file(csv.encode(), "csv", None))
    Groups(store, accounts).add("nora", "helpdesk-team")  # a code will do

    async def scenario(c: httpx.AsyncClient, node: httpx.AsyncClient) -> None:
        await sign_in(c, "hana", code_of("hana"))
        page = await c.get("/console/tokens", params={"free": "1"})
        assert page.status_code == 200 and page.text.count("<td>FOB-") == 3
        form = {"csrf": csrf(page), "serial": "FOB-1", "user": "piet"}
        r = await c.post("/console/tokens/assign", data=form)
        assert r.status_code == 303 and r.headers["location"] == "/console/users/piet"
        assert "hotp" in (await c.get("/console/users/piet")).text
        page = await c.get("/console/tokens")
        assert 'href="/console/users/piet">piet</a>' in page.text
        free = await c.get("/console/tokens", params={"free": "1"})
        assert "FOB-1" not in free.text and "FOB-2" in free.text
        form = {"csrf": csrf(page), "serial": "FOB-2"}
        r = await c.post("/console/tokens/remove", data=form)
        assert r.status_code == 403 and "your role does not allow it" in r.text
        r = await c.post("/console/tokens/assign", data={**form, "user": ""})
        assert r.status_code == 400 and "Type the name of the user" in r.text
        r = await c.post("/console/tokens/assign", data={"csrf": csrf(page), "user": "piet"})
        assert r.status_code == 400 and "Type the serial number of a token." in r.text
        r = await c.post("/console/tokens/assign", data={**form, "serial": "NOPE", "user": "piet"})
        assert r.status_code == 404, r.text
        await c.post("/console/sign-out", data={"csrf": csrf(page)})
        await sign_in(c, "nora", code_of("nora"))
        page = await c.get("/console/tokens")
        r = await c.post("/console/tokens/remove", data={"csrf": csrf(page), "serial": "FOB-2"})
        assert r.status_code == 303 and r.headers["location"] == "/console/tokens"
        assert "FOB-2" not in (await c.get("/console/tokens")).text

    run(store, config, tmp_path, key, scenario)
