"""Step-up judged from the browser's network (``node.portal_policy`` ``PortalPolicy.step_up``),
through the whole SDK app. An OpenID Connect application: the portal's code call carries the
browser's address (``X-OpenMFA-Client-Address``, as its sign-in calls do), and the
application's rule matches it — a session signed in at the portal with a backup code gets the
``app`` application's code from the office network; from elsewhere (or with no address said)
the rule there wants a passkey, so the person must sign in again for it. A site behind
forward-auth: ``GET /v1/portal/me`` with ``X-OpenMFA-Sign-In-For: forward-auth`` names the
sites' rule the session does not satisfy (``step_up``), by the same check."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from openmfa.config import Config
from openmfa.core.policy import Rule
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.oidc_clients import OidcClients
from openmfa.node.oidc_codes import s256
from openmfa.node.passwords import set_password
from openmfa.node.policy_rules import PolicyRules
from openmfa.sdk.app import create_app
from openmfa.store.database import DataDir, Store
from openmfa.wiring import NodeRuntime
from tests.node.oidc_helpers import oidc_config

APP = "https://app.example.org/cb"
WHERE = "x-openmfa-client-address"


def test_an_applications_rule_matches_the_browsers_network_on_the_code_call(
    tmp_path: Path,
) -> None:
    config = oidc_config()
    store = Store.create(DataDir(tmp_path / "node"), config)
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    set_password(store, accounts, "alice", "correct horse")
    codes = accounts.enroll("alice", "backup-codes").backup_codes or []
    key = ApiKeys(store).create("portal1", "portal")
    client, _ = OidcClients(store).add("app", [APP])
    rules = PolicyRules(store)
    rules.add(Rule("app-office", channels=("oidc",), clients=("app",), networks=("10.0.0.0/8",),
                   methods=("backup", "totp", "passkey")))  # fmt: skip
    rules.add(Rule("app-elsewhere", channels=("oidc",), clients=("app",), methods=("passkey",)))
    h = {"authorization": f"Bearer {key}"}

    async def scenario(c: httpx.AsyncClient) -> None:
        sign_in = {"user": "alice", "password": "correct horse"}
        first = (await c.post("/v1/portal/sign-in", json=sign_in, headers=h)).json()
        step = await c.post(
            "/v1/portal/second-factor",
            json={"ticket": first["ticket"], "code": codes[0]},
            headers={**h, WHERE: "10.1.2.3"},
        )
        session = {**h, "x-openmfa-session": step.json()["token"]}
        ask = {
            "client_id": client.client_id,
            "redirect_uri": APP,
            "code_challenge": s256(secrets.token_urlsafe(48)),
            "scope": "openid",
        }
        office = await c.post("/v1/oidc/code", json=ask, headers={**session, WHERE: "10.1.2.3"})
        assert office.status_code == 200, office.text
        for elsewhere in ({WHERE: "198.51.100.7"}, {}):
            r = await c.post("/v1/oidc/code", json=ask, headers={**session, **elsewhere})
            assert r.status_code == 403 and r.json()["code"] == "access_denied", r.text
            assert "policy rule app-elsewhere" in r.json()["message"]
        bad = await c.post("/v1/oidc/code", json=ask, headers={**session, WHERE: "a\x01b"})
        assert bad.status_code == 422, bad.text  # a header that is no address: a clear refusal

    serve(store, config, scenario)


def serve(
    store: Store, config: Config, scenario: Callable[[httpx.AsyncClient], Awaitable[None]]
) -> None:
    async def main() -> None:
        node = NodeRuntime(store, config, radius_listen="")
        await node.start()
        try:
            transport = httpx.ASGITransport(app=create_app(node))
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
                await scenario(c)
        finally:
            await node.stop()

    try:
        asyncio.run(main())
    finally:
        store.close()


def test_the_portal_asks_whether_a_session_stands_for_the_sites_from_where_it_is(
    tmp_path: Path,
) -> None:
    config = oidc_config()
    store = Store.create(DataDir(tmp_path / "node"), config)
    accounts = Accounts(store, config)
    accounts.add_user("bea")
    set_password(store, accounts, "bea", "correct horse")
    codes = accounts.enroll("bea", "backup-codes").backup_codes or []
    key = ApiKeys(store).create("portal1", "portal")
    PolicyRules(store).add(
        Rule("sites-away", channels=("forward-auth",), networks=("198.51.100.0/24",),
             methods=("totp",))
    )  # fmt: skip
    h = {"authorization": f"Bearer {key}"}

    async def scenario(c: httpx.AsyncClient) -> None:
        first = (
            await c.post(
                "/v1/portal/sign-in", json={"user": "bea", "password": "correct horse"}, headers=h
            )
        ).json()
        step = await c.post(
            "/v1/portal/second-factor",
            json={"ticket": first["ticket"], "code": codes[0]},
            headers=h,
        )
        session = {**h, "x-openmfa-session": step.json()["token"]}
        sites = {**session, "x-openmfa-sign-in-for": "forward-auth"}

        async def step_up(headers: dict[str, str]) -> str:
            r = await c.get("/v1/portal/me", headers=headers)
            assert r.status_code == 200, r.text
            return str(r.json()["step_up"])

        assert await step_up(session) == ""  # not asked
        assert await step_up({**sites, WHERE: "10.1.2.3"}) == ""  # the default rule there
        assert await step_up({**sites, WHERE: "198.51.100.7"}) == "sites-away"
        bad = await c.get("/v1/portal/me", headers={**session, "x-openmfa-sign-in-for": "x y"})
        assert bad.status_code == 422 and "X-OpenMFA-Sign-In-For" in bad.text

    serve(store, config, scenario)
