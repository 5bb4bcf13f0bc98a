"""Remembered browsers through the whole SDK app (httpx's ASGI transport over a real node
runtime): the first step offers the box under a rule that allows it, the second step with
``remember`` answers the cookie's token, the next first step with ``X-OpenMFA-Remembered``
signs in at once, the person lists it (alone, and with their sessions) and forgets it, and
every refusal — a malformed header, no session, another person's record, a forged id, a wrong
type — is a 4xx, never a 5xx."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from openmfa.core.policy import Rule
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.passwords import set_password
from openmfa.node.policy_rules import PolicyRules
from openmfa.sdk.app import create_app
from openmfa.sdk.headers import REMEMBERED_HEADER
from openmfa.store.database import DataDir, Store
from openmfa.wiring import NodeRuntime
from tests.conftest import make_config

PASSWORD = "correct horse"


def test_remember_sign_in_again_list_and_forget_through_the_sdk(tmp_path: Path) -> None:
    config = make_config()
    store = Store.create(DataDir(tmp_path / "node"), config)
    accounts = Accounts(store, config)
    codes: dict[str, list[str]] = {}
    for name in ("alice", "bob"):
        accounts.add_user(name)
        set_password(store, accounts, name, PASSWORD)
        codes[name] = accounts.enroll(name, "backup-codes").backup_codes or []
    PolicyRules(store).add(Rule("remember-week", channels=("portal",), remember_minutes=10080))
    h = {"authorization": f"Bearer {ApiKeys(store).create('portal1', 'portal')}"}

    async def first(c: httpx.AsyncClient, user: str, remembered: str = "") -> httpx.Response:
        headers = {**h, REMEMBERED_HEADER: remembered} if remembered else h
        return await c.post(
            "/v1/portal/sign-in", json={"user": user, "password": PASSWORD}, headers=headers
        )

    async def remembered_sign_in(c: httpx.AsyncClient, user: str) -> tuple[str, str]:
        step = (await first(c, user)).json()
        assert step["remember_minutes"] == 10080, step
        second = await c.post(
            "/v1/portal/second-factor",
            json={"ticket": step["ticket"], "code": codes[user].pop(), "remember": True},
            headers={**h, "x-openmfa-client-address": "192.0.2.7"},
        )
        assert second.status_code == 200, second.text
        body = second.json()
        assert body["remember_token"] and body["remember_minutes"] == 10080
        return str(body["token"]), str(body["remember_token"])

    async def scenario(c: httpx.AsyncClient) -> None:
        session, browser = await remembered_sign_in(c, "alice")
        bob_session, _ = await remembered_sign_in(c, "bob")
        again = await first(c, "alice", browser)
        assert again.status_code == 200 and again.json()["reason"] == "remembered"
        assert again.json()["token"] and not again.json().get("ticket")

        def me(token: str) -> dict[str, str]:
            return {**h, "x-openmfa-session": token}

        listed = (await c.get("/v1/portal/me/remembered", headers=me(session))).json()
        [row] = listed["browsers"]
        assert row["address"] == "192.0.2.7" and row["expires_at"] > row["created_at"]
        # The sessions page's one call carries them too.
        page = (await c.get("/v1/portal/me/sessions", headers=me(session))).json()
        assert page["remembered"] == listed["browsers"] and page["sessions"] is not None
        bob_ref = (await c.get("/v1/portal/me/remembered", headers=me(bob_session))).json()[
            "browsers"
        ][0]["id"]
        # Refusals: never a 5xx, and nothing forgotten by them.
        for path, headers, status in [
            (f"/v1/portal/me/remembered/{row['id']}", h, 401),  # no session token
            (f"/v1/portal/me/remembered/{row['id']}", me("omfp_forged"), 401),
            (f"/v1/portal/me/remembered/{bob_ref}", me(session), 404),  # another person's
            ("/v1/portal/me/remembered/forged", me(session), 404),
            ("/v1/portal/me/remembered/" + "x" * 300, me(session), 404),
        ]:
            r = await c.delete(path, headers=headers)
            assert r.status_code == status, (path, r.status_code, r.text)
        assert (await c.get("/v1/portal/me/remembered", headers=h)).status_code == 401
        for bad in ("not a token!", "x" * 129):
            r = await first(c, "alice", bad)
            assert r.status_code == 422, (bad, r.text)
        step = (await first(c, "alice")).json()
        r = await c.post(
            "/v1/portal/second-factor",
            json={"ticket": step["ticket"], "code": "12345678", "remember": "yes"},
            headers=h,
        )
        assert r.status_code in (400, 422), r.text
        assert (await first(c, "alice", browser)).json()["reason"] == "remembered"  # stands
        # Alice forgets it: the next sign-in asks the second factor again.
        gone = await c.delete(f"/v1/portal/me/remembered/{row['id']}", headers=me(session))
        assert gone.status_code == 204, gone.text
        after = (await first(c, "alice", browser)).json()
        assert after["reason"] == "ok" and after["ticket"] and not after.get("token")
        twice = await c.delete(f"/v1/portal/me/remembered/{row['id']}", headers=me(session))
        assert twice.status_code == 404
        assert (await c.get("/v1/portal/me/remembered", headers=me(session))).json() == {
            "browsers": []
        }
        page = (await c.get("/v1/portal/me/sessions", headers=me(session))).json()
        assert page["remembered"] == []
        assert (await c.get("/v1/portal/me/sessions", headers=h)).status_code == 401

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
