"""Policy rules through the SDK app in process (a real node runtime, both databases): a method
the rule does not allow is refused with the reason ``method_not_allowed``; a trusted network
skips the second factor only for a ``source`` an API key marked ``--may-assert-source`` names —
the same ``source`` from another key is ignored (a spoof changes nothing); refusals of the mark
are clear errors, never a 5xx."""

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
from openmfa.node.policy_rules import PolicyRules
from openmfa.store import tables as t
from openmfa.store.database import Store
from tests.sdk.test_app import run_app

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
KEY = base64.b32decode(SECRET)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_method_the_rule_does_not_allow(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    accounts.enroll("alice", "totp", secret=SECRET)
    rules = PolicyRules(store)
    rules.add(Rule("apps", channels=("sdk",), clients=("intranet",), methods=("push", "backup")))
    intranet = bearer(ApiKeys(store).create("intranet", "admin"))
    other = bearer(ApiKeys(store).create("other", "admin"))

    async def scenario(c: httpx.AsyncClient) -> None:
        now = time.time()
        r = await c.post(
            "/v1/authenticate", json={"user": "alice", "code": totp(KEY, now)}, headers=intranet
        )
        assert r.status_code == 200, r.text
        said = r.json()
        assert (said["accepted"], said["reason"]) == (False, "method_not_allowed")
        assert said["method_id"]
        # Another application's key: no rule for it, the same code is taken.
        r = await c.post(
            "/v1/authenticate", json={"user": "alice", "code": totp(KEY, now)}, headers=other
        )
        assert r.json()["accepted"] is True

    run_app(store, config, scenario)
    with store.read() as conn:
        detail = conn.scalar(
            select(t.audit.c.detail).where(t.audit.c.reason == "method_not_allowed")
        )
    assert detail == "method totp not allowed by policy rule apps"


def test_only_a_marked_key_s_source_counts(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    accounts.enroll("alice", "totp", secret=SECRET)
    PolicyRules(store).add(
        Rule("office", channels=("sdk",), networks=("10.0.0.0/8",), second_factor="skip")
    )
    proxy = bearer(ApiKeys(store).create("proxy", "admin", asserts_source=True))
    spoof = bearer(ApiKeys(store).create("spoof", "admin"))
    dmz = bearer(ApiKeys(store).create("portal", "portal"))
    assert {k.name: k.asserts_source for k in ApiKeys(store).list()} == {
        "portal": False,
        "proxy": True,
        "spoof": False,
    }

    async def scenario(c: httpx.AsyncClient) -> None:
        inside = {"user": "alice", "code": "", "source": "10.1.2.3"}
        r = await c.post("/v1/authenticate", json=inside, headers=proxy)
        assert r.status_code == 200 and r.json()["accepted"] is True
        assert r.json()["reason"] == "skipped"
        for key in (spoof, dmz):  # the same source from a key not marked: ignored
            r = await c.post("/v1/authenticate", json=inside, headers=key)
            assert r.status_code == 200 and r.json()["accepted"] is False, r.text
        outside = inside | {"source": "192.0.2.1"}
        r = await c.post("/v1/authenticate", json=outside, headers=proxy)
        assert r.json()["accepted"] is False
        r = await c.post(
            "/v1/authenticate", json=inside | {"source": "not an address"}, headers=proxy
        )
        assert r.status_code == 200 and r.json()["accepted"] is False
        r = await c.post("/v1/authenticate", json=inside | {"source": "\x07"}, headers=proxy)
        assert r.status_code == 422 and r.json()["code"] == "invalid_input"

    run_app(store, config, scenario)
    with store.read() as conn:
        rows = conn.execute(
            select(t.audit.c.client, t.audit.c.result, t.audit.c.detail)
            .where(t.audit.c.action == "authenticate")
            .order_by(t.audit.c.id)
        ).all()
    assert rows[0] == ("proxy", "accepted", "second factor skipped by policy rule office")
    assert [(r.client, r.result) for r in rows[1:3]] == [
        ("spoof", "rejected"),
        ("portal", "rejected"),
    ]


def test_the_mark_waits_for_data_format_12(store: Store) -> None:
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="11"))
    with pytest.raises(Conflict, match="may assert a sign-in's source need data format 12"):
        ApiKeys(store).create("proxy", "admin", asserts_source=True)
    ApiKeys(store).create("plain", "admin")  # an unmarked key: any format, as before
