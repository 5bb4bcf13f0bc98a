"""A person's password through the whole SDK app (httpx's ASGI transport over a real node
runtime): signed in with the real first and second factor, they read what a new password
needs and change it; the old session ends, the new token works, the new password signs in
and the old one no longer does. Every malformed or refused request answers below 500."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.passwords import set_password
from openmfa.node.portal import AUTH_TIME, SESSION
from openmfa.sdk.app import create_app
from openmfa.store.database import DataDir, Store
from openmfa.wiring import NodeRuntime
from tests.conftest import make_config

OLD = "an old portal password"
NEW = "rivers of tea and cardboard"
ROUTE = "/v1/portal/me/password"


def test_a_password_changed_through_the_sdk(tmp_path: Path) -> None:
    config = make_config()
    store = Store.create(DataDir(tmp_path / "node"), config)
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    set_password(store, accounts, "alice", OLD)
    codes = accounts.enroll("alice", "backup-codes").backup_codes or []
    key = ApiKeys(store).create("portal1", "portal")
    h = {"authorization": f"Bearer {key}"}

    async def sign_in(c: httpx.AsyncClient, password: str, code: str) -> httpx.Response:
        first = await c.post(
            "/v1/portal/sign-in", json={"user": "alice", "password": password}, headers=h
        )
        if not first.json()["accepted"]:
            return first
        return await c.post(
            "/v1/portal/second-factor", json={"ticket": first.json()["ticket"], "code": code},
            headers=h,
        )  # fmt: skip

    async def scenario(c: httpx.AsyncClient, node: NodeRuntime) -> None:
        session = (await sign_in(c, OLD, codes[0])).json()["token"]
        me = {**h, "x-openmfa-session": session}
        policy = await c.get(ROUTE, headers=me)
        assert policy.status_code == 200, policy.text
        assert policy.json() == {"where": "local", "min_length": 12, "common_list": True}

        # Malformed: a 4xx each, never a 5xx, and the password unchanged.
        for body in (
            b"",
            b"not json",
            b"[]",
            b'{"current": "x"}',
            b'{"current": "", "new": "long enough new one"}',
            b'{"current": 1, "new": 2}',
            b'{"current": "x", "new": "y", "more": "z"}',
            ('{"current": "%s", "new": "y"}' % ("x" * 129)).encode(),
            ('{"current": "x", "new": "%s"}' % ("\u00e9" * 1025)).encode(),
        ):
            r = await c.post(ROUTE, content=body, headers=me)
            assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        for headers in (h, {**h, "x-openmfa-session": "omfp_nothing"}, {}):
            r = await c.post(ROUTE, json={"current": OLD, "new": NEW}, headers=headers)
            assert r.status_code == 401, r.text

        # Refused in words the portal turns into sentences (200: an answer, not an error).
        for current, new, reason in (
            (OLD, "too short", "too_short"),
            (OLD, "welkom12345!", "common"),
            (OLD, OLD, "same"),
            ("not my password", NEW, "wrong_password"),
        ):
            r = await c.post(ROUTE, json={"current": current, "new": new}, headers=me)
            assert r.status_code == 200, r.text
            assert (r.json()["changed"], r.json()["reason"]) == (False, reason)

        # A sign-in older than [portal] reauth_minutes must be confirmed first.
        stale, _ = node.portal.issue(
            SESSION, "alice", "portal1", time.time(), {AUTH_TIME: repr(time.time() - 3600)}
        )
        r = await c.post(
            ROUTE, json={"current": OLD, "new": NEW}, headers={**h, "x-openmfa-session": stale}
        )
        assert (r.status_code, r.json()["code"]) == (403, "reauthenticate")

        r = await c.post(ROUTE, json={"current": OLD, "new": NEW}, headers=me)
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["changed"] and done["reason"] == "ok" and done["token"]
        assert NEW not in r.text and OLD not in r.text
        assert (await c.get("/v1/portal/me", headers=me)).status_code == 401  # ended
        renewed = await c.get("/v1/portal/me", headers={**h, "x-openmfa-session": done["token"]})
        assert renewed.status_code == 200, renewed.text

        refused = await sign_in(c, OLD, codes[1])
        assert refused.json()["reason"] == "wrong_password"
        again = await sign_in(c, NEW, codes[1])
        assert again.json()["accepted"] and again.json()["token"]

    async def main() -> None:
        node = NodeRuntime(store, config, radius_listen="")
        await node.start()
        try:
            transport = httpx.ASGITransport(app=create_app(node))
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
                await scenario(c, node)
        finally:
            await node.stop()

    try:
        asyncio.run(main())
    finally:
        store.close()
