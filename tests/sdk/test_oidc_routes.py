"""The OpenID Connect routes through the whole SDK app (httpx's ASGI transport over a real node
runtime): a portal key signs a person in with the real first and second factor, gets a code for
the session, redeems it once, and the ID token verifies against the JWKS the node publishes."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from pathlib import Path

import httpx

from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.oidc_clients import ENTRA_REDIRECT, OidcClients
from openmfa.node.oidc_codes import s256
from openmfa.node.oidc_subjects import OidcSubjects
from openmfa.node.passwords import set_password
from openmfa.sdk.app import create_app
from openmfa.store.database import DataDir, Store
from openmfa.wiring import NodeRuntime
from tests.node.oidc_helpers import oidc_config, verify_independently
from tests.node.test_oidc_eam import APP_ID, CLAIMS, OID, TENANT, StandInEntra

APP = "https://app.example.org/cb"


def test_code_and_token_through_the_sdk(tmp_path: Path) -> None:
    config = oidc_config()
    store = Store.create(DataDir(tmp_path / "node"), config)
    accounts = Accounts(store, config)
    accounts.add_user("alice", email="alice@example.org")
    set_password(store, accounts, "alice", "correct horse")
    codes = accounts.enroll("alice", "backup-codes").backup_codes or []
    key = ApiKeys(store).create("portal1", "portal")
    client, secret = OidcClients(store).add("app", [APP])
    h = {"authorization": f"Bearer {key}"}

    async def scenario(c: httpx.AsyncClient) -> None:
        first = (
            await c.post(
                "/v1/portal/sign-in", json={"user": "alice", "password": "correct horse"}, headers=h
            )
        ).json()
        step = await c.post(
            "/v1/portal/second-factor",
            json={"ticket": first["ticket"], "code": codes[0]},
            headers=h,
        )
        session = step.json()["token"]
        verifier = secrets.token_urlsafe(48)
        ask = {
            "client_id": client.client_id,
            "redirect_uri": APP,
            "code_challenge": s256(verifier),
            "scope": "openid email",
            "nonce": "n1",
        }
        r = await c.post("/v1/oidc/code", json=ask, headers={**h, "x-openmfa-session": session})
        assert r.status_code == 200, r.text
        code = r.json()["code"]
        # A challenge or verifier outside RFC 7636's alphabet is refused as input, never a 500.
        for challenge in ("é" * 43, "a" * 44, "a" * 42):
            bad = await c.post(
                "/v1/oidc/code",
                json={**ask, "code_challenge": challenge},
                headers={**h, "x-openmfa-session": session},
            )
            assert bad.status_code == 422, bad.text
        no_session = await c.post("/v1/oidc/code", json=ask, headers=h)
        assert no_session.status_code == 401
        redeem = {
            "code": code,
            "client_id": client.client_id,
            "client_secret": secret,
            "redirect_uri": APP,
            "code_verifier": verifier,
        }
        for bad_verifier in ("é" * 43, "a" * 42, "a" * 129, "a b" * 20):
            bad = await c.post(
                "/v1/oidc/token", json={**redeem, "code_verifier": bad_verifier}, headers=h
            )
            assert bad.status_code == 422, bad.text
        r = await c.post("/v1/oidc/token", json=redeem, headers=h)
        assert r.status_code == 200, r.text
        tokens = r.json()
        assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 300
        provider = (await c.get("/v1/oidc/provider", headers=h)).json()
        assert provider["discovery"]["jwks_uri"] == "https://portal.example.org/portal/oidc/jwks"
        claims = verify_independently(tokens["id_token"], provider["jwks"])
        assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["email"] == "alice@example.org"
        assert claims["nonce"] == "n1" and claims["aud"] == client.client_id
        again = await c.post("/v1/oidc/token", json=redeem, headers=h)
        assert again.status_code == 400 and again.json()["code"] == "invalid_grant"
        wrong = await c.post("/v1/oidc/token", json={**redeem, "client_secret": "x"}, headers=h)
        assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_client"
        assert "x" * 3 not in wrong.text and secret not in wrong.text

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


def test_entra_s_sign_in_through_the_sdk_finishes_once_and_opens_nothing_else(
    tmp_path: Path,
) -> None:
    config = oidc_config()
    store = Store.create(DataDir(tmp_path / "node"), config)
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    codes = accounts.enroll("alice", "backup-codes").backup_codes or []
    key = ApiKeys(store).create("portal1", "portal")
    app, _ = OidcClients(store).add("app", [APP])
    entra = StandInEntra()
    eam, _ = OidcClients(store).add(
        "entra", [], kind="entra-eam", entra_tenant=TENANT, entra_client_id=APP_ID,
        jwks_uri=entra.jwks_uri,
    )  # fmt: skip
    OidcSubjects(store).map("alice", OID, TENANT)
    h = {"authorization": f"Bearer {key}"}
    ask = {"client_id": eam.client_id, "redirect_uri": ENTRA_REDIRECT, "claims": CLAIMS}

    async def scenario(c: httpx.AsyncClient) -> None:
        deep = "[" * 5000
        head = base64.urlsafe_b64encode(deep.encode()).decode().rstrip("=")
        for bad in (
            {**ask, "id_token_hint": entra.hint(time.time()), "claims": deep},
            {**ask, "id_token_hint": f"{head}.e30.sig"},
        ):
            r = await c.post("/v1/oidc/eam/start", json=bad, headers=h)
            assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text
        r = await c.post(
            "/v1/oidc/eam/start", json={**ask, "id_token_hint": entra.hint(time.time())}, headers=h
        )
        assert r.status_code == 200, r.text
        started = r.json()
        step = await c.post(
            "/v1/portal/second-factor",
            json={"ticket": started["ticket"], "code": codes[0]},
            headers=h,
        )
        assert step.status_code == 200, step.text
        s = {**h, "x-openmfa-session": step.json()["token"]}
        me = await c.get("/v1/portal/me", headers=s)  # no self-service: no password was checked
        assert me.status_code == 401 and "Entra ID started" in me.json()["message"]
        verifier = secrets.token_urlsafe(48)
        code_ask = {
            "client_id": app.client_id,
            "redirect_uri": APP,
            "code_challenge": s256(verifier),
        }
        r = await c.post("/v1/oidc/code", json=code_ask, headers=s)
        assert r.status_code == 401 and "Entra ID started" in r.json()["message"]
        finish = {"request": started["request"]}
        r = await c.post("/v1/oidc/eam/finish", json=finish, headers=s)
        assert r.status_code == 200 and r.json()["redirect_uri"] == ENTRA_REDIRECT, r.text
        r = await c.post("/v1/oidc/eam/finish", json=finish, headers=s)
        assert r.status_code == 400 and "finished already" in r.json()["message"]

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
        entra.close()
