"""Where a person is signed in, through the whole SDK app (httpx's ASGI transport over a real
node runtime): a portal reports two browsers of a person, lists them with their own session
token, ends one, and every refusal — no session, a forged one, another person's browser, a
forged id, a body out of bounds — is a 4xx, never a 5xx."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.passwords import set_password
from openmfa.sdk.app import create_app
from openmfa.store.database import DataDir, Store
from openmfa.wiring import NodeRuntime
from tests.conftest import make_config

FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0"


def test_report_list_and_end_through_the_sdk(tmp_path: Path) -> None:
    config = make_config()
    store = Store.create(DataDir(tmp_path / "node"), config)
    accounts = Accounts(store, config)
    codes: dict[str, list[str]] = {}
    for name in ("alice", "bob"):
        accounts.add_user(name)
        set_password(store, accounts, name, "correct horse")
        codes[name] = accounts.enroll(name, "backup-codes").backup_codes or []
    key = ApiKeys(store).create("portal1", "portal")
    h = {"authorization": f"Bearer {key}"}

    async def sign_in(c: httpx.AsyncClient, user: str, n: int) -> str:
        first = await c.post(
            "/v1/portal/sign-in", json={"user": user, "password": "correct horse"}, headers=h
        )
        step = await c.post(
            "/v1/portal/second-factor",
            json={"ticket": first.json()["ticket"], "code": codes[user][n]},
            headers=h,
        )
        return str(step.json()["token"])

    async def scenario(c: httpx.AsyncClient) -> None:
        phone, desk, bob = (
            await sign_in(c, "alice", 0),
            await sign_in(c, "alice", 1),
            await sign_in(c, "bob", 0),
        )

        def me(token: str) -> dict[str, str]:
            return {**h, "x-openmfa-session": token}

        seen = await c.post(
            "/v1/portal/me/seen",
            json={"address": "192.0.2.7", "user_agent": FIREFOX_ANDROID},
            headers=me(phone),
        )
        assert seen.status_code == 200, seen.text
        assert seen.json()["report_seconds"] == 60 and seen.json()["session_id"]
        for token in (desk, bob):
            r = await c.post(
                "/v1/portal/me/seen", json={"address": "198.51.100.9"}, headers=me(token)
            )
            assert r.status_code == 200, r.text
        listed = (await c.get("/v1/portal/me/sessions", headers=me(desk))).json()["sessions"]
        assert [(s["browser"], s["system"], s["current"]) for s in listed] == [
            ("", "", True),
            ("Firefox", "Android", False),
        ]
        phone_ref = listed[1]["id"]
        bob_ref = (await c.get("/v1/portal/me/sessions", headers=me(bob))).json()["sessions"][0][
            "id"
        ]
        # Refusals: never a 5xx, and nothing ended by them.
        for path, headers, status in [
            (f"/v1/portal/me/sessions/{phone_ref}", h, 401),  # no session token
            (f"/v1/portal/me/sessions/{phone_ref}", me("omfp_forged"), 401),
            (f"/v1/portal/me/sessions/{phone_ref}", me(desk[:-4] + "AAAA"), 401),
            (f"/v1/portal/me/sessions/{bob_ref}", me(desk), 404),  # another person's
            ("/v1/portal/me/sessions/forged", me(desk), 404),
            ("/v1/portal/me/sessions/" + "x" * 300, me(desk), 404),
            (f"/v1/portal/me/sessions/{phone_ref}", {"x-openmfa-session": desk}, 401),  # no key
        ]:
            r = await c.delete(path, headers=headers)
            assert r.status_code == status, (path, r.status_code, r.text)
        for body in (
            {"address": "x" * 65},
            {"user_agent": "x" * 513},
            {"earlier": ["a"] * 17},
            {"earlier": [""]},
            {"address": 7},
            {"language": "Dutch!"},
            {"language": "nl-" + "x" * 14},
        ):
            r = await c.post("/v1/portal/me/seen", json=body, headers=me(desk))
            assert r.status_code == 422, (body, r.text)
        assert (await c.get("/v1/portal/me/sessions", headers=h)).status_code == 401
        # Forward-auth's last seen: a portal key's batch; 204 whatever it names.
        cookie = {"user": "alice", "session": seen.json()["session_id"]}
        for body, headers, status in [
            ({"seen": [cookie, {"user": "bob", "session": "unknown"}]}, h, 204),
            ({"seen": []}, h, 204),
            ({"seen": [cookie] * 501}, h, 422),
            ({"seen": [{"user": "alice", "session": ""}]}, h, 422),
            ({"seen": [{"user": "alice"}]}, h, 422),
            ({"seen": [cookie]}, {}, 401),
        ]:
            r = await c.post("/v1/portal/sessions/seen", json=body, headers=headers)
            assert r.status_code == status, (status, r.text)
        assert (await c.get("/v1/portal/me", headers=me(phone))).status_code == 200  # stands
        assert (await c.get("/v1/portal/me", headers=me(bob))).status_code == 200
        # Alice ends her phone's session from her desk: the phone's token is refused at once.
        ended = await c.delete(f"/v1/portal/me/sessions/{phone_ref}", headers=me(desk))
        assert ended.status_code == 204, ended.text
        assert (await c.get("/v1/portal/me", headers=me(phone))).status_code == 401
        assert (await c.get("/v1/portal/me", headers=me(desk))).status_code == 200
        again = await c.delete(f"/v1/portal/me/sessions/{phone_ref}", headers=me(desk))
        assert again.status_code == 404
        view = (await c.get("/v1/portal/sessions/ended", headers=h)).json()
        assert seen.json()["session_id"] in [e["session"] for e in view["ends"]]  # the hosts learn

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
