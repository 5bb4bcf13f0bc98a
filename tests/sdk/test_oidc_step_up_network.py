"""An OpenID Connect application's step-up judged from the browser's network (``node.oidc_codes``
``_step_up``, ``node.portal_policy``), through the whole SDK app: the portal's code call carries
the browser's address (``X-OpenMFA-Client-Address``, as its sign-in calls do), and the
application's rule matches it. A session signed in at the portal with a backup code gets the
``app`` application's code from the office network; from elsewhere (or with no address said)
the rule there wants a passkey, so the person must sign in again for it."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx

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
