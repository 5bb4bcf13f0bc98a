"""PIN mode through the SDK app in process (a real node runtime, both databases): under a rule
with ``pin=required`` the PIN and the code in one field are accepted, the code alone and a
wrong PIN are refused ``wrong_pin`` and counted toward the lock (no code evaluated), a person
with no PIN is refused ``pin_not_set`` audited with the rule's name; the PIN routes set and
clear it (the view says whether one is set, never the hash), refusals are 4xx."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from sqlalchemy import delete, insert, select

from openmfa.config import Config
from openmfa.core.policy import Rule
from openmfa.core.totp import totp
from openmfa.errors import Conflict
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.pins import Pins
from openmfa.node.policy_rules import PolicyRules
from openmfa.store import tables as t
from openmfa.store.database import Store
from tests.sdk.test_app import run_app

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
KEY = base64.b32decode(SECRET)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_pin_and_code_in_one_field(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    for name in ("alice", "bob", "carol"):
        accounts.add_user(name)
        accounts.enroll(name, "totp", secret=SECRET)
    PolicyRules(store).add(Rule("pins", channels=("sdk",), pin="required", lockout_threshold=3))
    admin = bearer(ApiKeys(store).create("app", "admin"))

    async def scenario(c: httpx.AsyncClient) -> None:
        r = await c.put("/v1/users/alice/pin", json={"pin": "4711"}, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["pin_set"] is True and "4711" not in r.text
        for bad in ("12", "abcd", "1234567890123"):
            r = await c.put("/v1/users/alice/pin", json={"pin": bad}, headers=admin)
            assert r.status_code == 422 and r.json()["code"] == "invalid_input", r.text
        r = await c.put("/v1/users/nobody/pin", json={"pin": "4711"}, headers=admin)
        assert r.status_code == 404
        await c.put("/v1/users/bob/pin", json={"pin": "2580"}, headers=admin)

        code = totp(KEY, time.time())
        r = await c.post(
            "/v1/authenticate", json={"user": "alice", "code": "4711" + code}, headers=admin
        )
        assert (r.json()["accepted"], r.json()["reason"]) == (True, "ok"), r.text

        # The code alone, a wrong PIN: wrong_pin, counted; the third locks (the rule's 3).
        for field in (code, "0000" + code, "9999" + code):
            r = await c.post("/v1/authenticate", json={"user": "bob", "code": field}, headers=admin)
            assert (r.json()["accepted"], r.json()["reason"]) == (False, "wrong_pin"), r.text
        assert r.json()["locked_until"]
        r = await c.get("/v1/users/bob", headers=admin)
        assert r.json()["locked_until"]  # the lock counted the wrong PINs
        # Locked: even the right PIN and code are refused, the PIN not looked at.
        r = await c.post(
            "/v1/authenticate", json={"user": "bob", "code": "2580" + code}, headers=admin
        )
        assert r.json()["reason"] == "locked"

        r = await c.post(
            "/v1/authenticate", json={"user": "carol", "code": "4711" + code}, headers=admin
        )
        assert (r.json()["accepted"], r.json()["reason"]) == (False, "pin_not_set")
        r = await c.get("/v1/users/carol", headers=admin)
        assert r.json()["pin_set"] is False and r.json()["failures"] == 0

        r = await c.delete("/v1/users/alice/pin", headers=admin)
        assert r.status_code == 200 and r.json()["pin_set"] is False

    run_app(store, config, scenario)
    with store.read() as conn:
        rows = conn.execute(
            select(t.audit.c.user_name, t.audit.c.reason, t.audit.c.detail)
            .where(t.audit.c.action == "authenticate")
            .order_by(t.audit.c.id)
        ).all()
        stored = conn.scalar(select(t.user_pins.c.hash))
    assert [(r.user_name, r.reason) for r in rows] == [
        ("alice", "ok"),
        ("bob", "wrong_pin"),
        ("bob", "wrong_pin"),
        ("bob", "wrong_pin"),
        ("bob", "locked"),
        ("carol", "pin_not_set"),
    ]
    assert rows[1].detail == "wrong PIN (policy rule pins)"
    assert rows[5].detail == "no PIN set; policy rule pins requires one"
    assert stored is not None and stored.startswith("$argon2id$")  # bob's, hashed


def test_people_under_no_pin_rule_type_the_code_alone(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    accounts.enroll("alice", "totp", secret=SECRET)
    Pins(store, accounts).set("alice", "4711")
    PolicyRules(store).add(Rule("vpn", channels=("radius",), pin="required"))
    admin = bearer(ApiKeys(store).create("app", "admin"))

    async def scenario(c: httpx.AsyncClient) -> None:
        r = await c.post(
            "/v1/authenticate",
            json={"user": "alice", "code": totp(KEY, time.time())},
            headers=admin,
        )
        assert r.json()["accepted"] is True, r.text

    run_app(store, config, scenario)


def test_a_pin_waits_for_data_format_13(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="12"))
    with pytest.raises(Conflict, match="PINs need data format 13"):
        Pins(store, accounts).set("alice", "4711")
