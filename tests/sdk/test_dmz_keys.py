"""The keys of the hosts in a DMZ (issue 29): a stolen portal, adapter or mobile key can neither
push to people by name nor tell who exists. In process, over a real node runtime."""

from __future__ import annotations

import statistics
import time

import httpx

from openmfa.config import Config
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.store.database import Store

from .test_app import run_app

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_dmz_keys_push_nobody_and_answer_alike(store: Store, config: Config) -> None:
    acc = Accounts(store, config)
    acc.add_user("ann")
    acc.enroll("ann", "totp", secret=SEED)
    acc.add_user("bea")  # no method
    acc.add_user("cy")
    acc.enroll("cy", "totp", secret=SEED)
    acc.update_user("cy", {"enabled": False})
    keys = ApiKeys(store)
    admin = {"authorization": f"Bearer {keys.create('root', 'admin')}"}
    dmz = {
        s: {"authorization": f"Bearer {keys.create(s + '-key', s)}"} for s in ("portal", "adapter")
    }
    mobile = {"authorization": f"Bearer {keys.create('mobile-key', 'mobile')}"}

    async def scenario(c: httpx.AsyncClient) -> None:
        async def said(h: dict[str, str], body: dict[str, str]) -> tuple[int, dict[str, object]]:
            r = await c.post("/v1/authenticate", json=body, headers=h)
            answer = r.json()
            answer.pop("request_id")
            return r.status_code, answer

        for scope, h in dmz.items():
            # A push by name: refused before the user is looked at, alike for anyone.
            pushed = [await said(h, {"user": u, "method": "push"}) for u in ("ann", "nobody")]
            assert pushed[0] == pushed[1] and pushed[0][0] == 403, pushed
            assert "first factor" in str(pushed[0][1]["message"])
            # Known (an app, no method, disabled) or not: the same answer, code by code.
            for code in ("123456", "push", ""):
                unknown = await said(h, {"user": "nobody", "code": code})
                assert unknown[0] == 200 and unknown[1]["reason"] in ("wrong_code", "malformed")
                for user in ("ann", "bea", "cy"):
                    assert await said(h, {"user": user, "code": code}) == unknown, (scope, user)
            # Nor can it read users.
            for h2 in (h, mobile):
                assert (await c.get("/v1/users/ann", headers=h2)).status_code == 403
                assert (await c.get("/v1/users", headers=h2)).status_code == 403
        # An administrator's key is told why, and may ask for a push (ann has no phone).
        assert (await said(admin, {"user": "nobody", "code": "1"}))[1]["reason"] == "unknown_user"
        assert (await said(admin, {"user": "bea", "code": "1"}))[1]["reason"] == "no_method"
        assert (await said(admin, {"user": "ann", "method": "push"}))[0] == 200
        # The same timing class: one decision in the commit queue either way (and an unknown
        # user's code is checked against an app as a known user's is).
        h = dmz["portal"]
        await c.post("/v1/users/ann/unlock", headers=admin)

        async def took(user: str) -> float:
            t0 = time.perf_counter()
            await c.post("/v1/authenticate", json={"user": user, "code": "000000"}, headers=h)
            return time.perf_counter() - t0

        known, unknown_ = [], []
        for _ in range(8):  # below the lockout threshold (10)
            known.append(await took("ann"))
            unknown_.append(await took("nobody"))
        ratio = statistics.median(unknown_) / statistics.median(known)
        assert 0.2 < ratio < 5, (known, unknown_)

    run_app(store, config, scenario)
