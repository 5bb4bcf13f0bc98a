"""The administration console's node side through the SDK app in process (a real node runtime,
both databases): a console key alone only signs operators in; an operator signs in with both
factors (a code only where a policy rule names code kinds; a person without a role never gets
a token) and then acts with their token, as their role allows, decided by the node on every
call — a helpdesk operator unlocks and gives an access code but is refused 403 giving roles or
deleting a user; an auditor reads and is refused an unlock; a role taken away, or a lock, refuses
the next call; every action is audited as ``KEY/OPERATOR``."""

from __future__ import annotations

import base64
import time

import httpx
from sqlalchemy import select

from openmfa.config import Config
from openmfa.core.policy import Rule
from openmfa.core.totp import totp
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.groups import Groups
from openmfa.node.passwords import set_password
from openmfa.node.policy_rules import PolicyRules
from openmfa.node.portal import PortalTokens
from openmfa.node.roles import Roles
from openmfa.sdk.headers import OPERATOR_HEADER
from openmfa.store import tables as t
from openmfa.store.database import Store
from tests.sdk.test_app import run_app

SECRETS = {
    "hana": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    "otto": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    "nora": "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U",
}


PASSWORD = "correct horse"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def code_of(name: str, at: float) -> str:
    return totp(base64.b32decode(SECRETS[name]), at)


def setup(store: Store, config: Config) -> tuple[dict[str, str], dict[str, str]]:
    accounts = Accounts(store, config)
    for name in (*SECRETS, "pia"):
        accounts.add_user(name)
        set_password(store, accounts, name, "correct horse")
    for name, secret in SECRETS.items():
        accounts.enroll(name, "totp", secret=secret)
    roles = Roles(store, accounts, PortalTokens(store, config))
    roles.set("hana", "helpdesk")
    roles.set("otto", "auditor")
    Groups(store, accounts).add("hana", "mfa-admins")
    Groups(store, accounts).add("otto", "mfa-admins")
    # Operators in mfa-admins may sign in with a code: the rule names a code kind.
    PolicyRules(store).add(Rule("admins-codes", groups=("mfa-admins",), methods=("totp",)))
    admin = bearer(ApiKeys(store).create("ops", "admin"))
    console = bearer(ApiKeys(store).create("console1", "console"))
    return admin, console


async def sign_in(c: httpx.AsyncClient, console: dict[str, str], name: str, at: float) -> str:
    r = await c.post(
        "/v1/console/sign-in", json={"user": name, "password": "correct horse"}, headers=console
    )
    assert r.status_code == 200 and r.json()["accepted"], r.text
    ticket = r.json()["ticket"]
    r = await c.post(
        "/v1/console/second-factor",
        json={"ticket": ticket, "code": code_of(name, at)},
        headers=console,
    )
    assert r.status_code == 200 and r.json()["accepted"], r.text
    token = r.json()["token"]
    assert isinstance(token, str) and token.startswith("omfp_")
    return token


def audit_rows(store: Store, action: str) -> list[tuple[str, str, str]]:
    with store.read() as conn:
        rows = conn.execute(
            select(t.audit.c.user_name, t.audit.c.client, t.audit.c.result)
            .where(t.audit.c.action == action)
            .order_by(t.audit.c.id)
        ).all()
    return [(r.user_name, r.client, r.result) for r in rows]


def test_operators_act_as_their_role_allows(store: Store, config: Config) -> None:
    admin, console = setup(store, config)
    now = time.time()

    async def scenario(c: httpx.AsyncClient) -> None:
        # The console key alone: nothing but signing in.
        r = await c.get("/v1/users/pia", headers=console)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
        # An admin key with an operator token: refused (only a console key carries one).
        r = await c.get("/v1/users/pia", headers={**admin, OPERATOR_HEADER: "omfp_x"})
        assert r.status_code == 403 and "scope console" in r.json()["message"]
        # A forged or foreign token: 401.
        r = await c.get("/v1/users/pia", headers={**console, OPERATOR_HEADER: "omfp_forged"})
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"

        helpdesk = {**console, OPERATOR_HEADER: await sign_in(c, console, "hana", now)}
        auditor = {**console, OPERATOR_HEADER: await sign_in(c, console, "otto", now)}

        # helpdesk: find, view, unlock, an access code, the audit; not roles, not delete.
        r = await c.get("/v1/users", headers=helpdesk)
        assert r.status_code == 200 and "pia" in [u["name"] for u in r.json()["users"]]
        r = await c.get("/v1/users/hana", headers=helpdesk)
        assert r.json()["role"] == "helpdesk"
        r = await c.post("/v1/users/pia/unlock", headers=helpdesk)
        assert r.status_code == 200, r.text
        r = await c.post("/v1/users/pia/access-code", json={"minutes": 30}, headers=helpdesk)
        assert r.status_code == 201 and r.json()["user"] == "pia" and r.json()["code"], r.text
        r = await c.get("/v1/audit?user=pia", headers=helpdesk)
        assert r.status_code == 200
        for method, path, body in (
            ("PUT", "/v1/users/pia/role", {"role": "admin"}),
            ("DELETE", "/v1/users/pia", None),
            ("POST", "/v1/users", {"name": "mallory"}),
            ("POST", "/v1/users/pia/methods", {"kind": "totp"}),
            ("GET", "/v1/users/pia/export", None),  # everything held about a person: admin
            ("POST", "/v1/users/pia/erase", None),
        ):
            r = await c.request(method, path, json=body, headers=helpdesk)
            assert r.status_code == 403 and r.json()["code"] == "forbidden", (path, r.text)
            assert "'hana' has role 'helpdesk'" in r.json()["message"]
        assert (await c.get("/v1/users/pia", headers=admin)).json()["role"] == ""
        # helpdesk acts on people, never on an operator (otto) nor on themselves (hana): what
        # they gave could sign that operator in to the console.
        for path, body in (
            ("/v1/users/otto/bypass", {"seconds": 60}),
            ("/v1/users/otto/access-code", {"minutes": 30}),
            ("/v1/users/hana/bypass", {"seconds": 60}),
            ("/v1/users/otto/unlock", None),
        ):
            r = await c.post(path, json=body, headers=helpdesk)
            assert r.status_code == 403 and "ask an admin" in r.json()["message"], (path, r.text)
        r = await c.post("/v1/users/pia/bypass", json={"seconds": 60}, headers=helpdesk)
        assert r.status_code == 200, r.text

        # auditor: reads only.
        assert (await c.get("/v1/users/pia", headers=auditor)).status_code == 200
        assert (await c.get("/v1/audit", headers=auditor)).status_code == 200
        r = await c.post("/v1/users/pia/unlock", headers=auditor)
        assert r.status_code == 403 and "role 'auditor'" in r.json()["message"]
        r = await c.post("/v1/users/pia/bypass", json={"seconds": 60}, headers=auditor)
        assert r.status_code == 403

        # The role taken away (by an admin key): the very next call is refused.
        r = await c.delete("/v1/users/hana/role", headers=admin)
        assert r.status_code == 200 and r.json()["role"] == ""
        r = await c.get("/v1/users/pia", headers=helpdesk)
        assert r.status_code == 403 and "no longer an operator" in r.json()["message"]
        # A locked operator: refused too (sign in again, once unlocked).
        await c.put("/v1/users/otto/role", json={"role": "auditor"}, headers=admin)
        with store.write() as conn:  # the lock as the authenticator writes it
            conn.execute(
                t.user_state.update()
                .where(t.user_state.c.user_id == Accounts(store, config).user_id("otto"))
                .values(locked_until=time.time() + 600)
            )
        r = await c.get("/v1/users/pia", headers=auditor)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"

    run_app(store, config, scenario)
    # Every action of an operator audited under the console key and the operator's name.
    assert audit_rows(store, "user.unlock") == [("pia", "console1/hana", "ok")]
    assert [r[1] for r in audit_rows(store, "method.add") if r[0] == "pia"] == ["console1/hana"]
    signed = audit_rows(store, "console.sign_in")
    assert ("hana", "console1/hana", "ok") in signed and ("otto", "console1/otto", "ok") in signed
    assert audit_rows(store, "user.role")[-2:] == [
        ("hana", "ops", "ok"),
        ("otto", "ops", "ok"),
    ]


def test_who_may_sign_in_and_with_what(store: Store, config: Config) -> None:
    admin, console = setup(store, config)
    now = time.time()

    async def first(c: httpx.AsyncClient, name: str, password: str = PASSWORD) -> str:
        r = await c.post(
            "/v1/console/sign-in", json={"user": name, "password": password}, headers=console
        )
        assert r.status_code == 200, r.text
        return str(r.json()["reason"]) if not r.json()["accepted"] else r.json()["ticket"]

    async def scenario(c: httpx.AsyncClient) -> None:
        assert await first(c, "hana", "wrong") == "wrong_password"
        assert await first(c, "nora") == "not_an_operator"  # no role
        # nora gets a role, but no rule lets her sign in with a code: refused before it is
        # checked (the code is not used up)
        await c.put("/v1/users/nora/role", json={"role": "admin"}, headers=admin)
        ticket = await first(c, "nora")
        code = code_of("nora", now)
        r = await c.post(
            "/v1/console/second-factor", json={"ticket": ticket, "code": code}, headers=console
        )
        assert r.json() == {**r.json(), "accepted": False, "reason": "method_not_allowed"}
        r = await c.post("/v1/authenticate", json={"user": "nora", "code": code}, headers=admin)
        assert r.json()["accepted"] is True, r.text  # not used up by the refusal
        # A portal key's ticket is no console ticket; a console ticket no portal one.
        portal = bearer(ApiKeys(store).create("portal1", "portal"))
        r = await c.post(
            "/v1/portal/sign-in", json={"user": "hana", "password": "correct horse"}, headers=portal
        )
        r = await c.post(
            "/v1/console/second-factor",
            json={"ticket": r.json()["ticket"], "code": code_of("hana", now)},
            headers=console,
        )
        assert r.status_code == 401
        r = await c.post("/v1/portal/sign-in", json={"user": "x", "password": "y"}, headers=console)
        assert r.status_code == 403
        # An admin operator may give roles (audited as the operator).
        token = await sign_in(c, console, "hana", now)
        await c.put("/v1/users/hana/role", json={"role": "admin"}, headers=admin)
        r = await c.put(
            "/v1/users/pia/role",
            json={"role": "auditor"},
            headers={**console, OPERATOR_HEADER: token},
        )
        assert r.status_code == 200 and r.json()["role"] == "auditor", r.text
        r = await c.put("/v1/users/pia/role", json={"role": "root"}, headers=admin)
        assert r.status_code == 422

    run_app(store, config, scenario)
    refused = [r for r in audit_rows(store, "console.sign_in") if r[2] == "rejected"]
    assert ("nora", "console1/nora", "rejected") in refused
    assert audit_rows(store, "user.role")[-1] == ("pia", "console1/hana", "ok")
