"""Where a sign-in came from, through the whole SDK app (httpx's ASGI transport over a real node
runtime): the portal says the browser's address and user agent in headers with its sign-in
calls, an application says ``source``; the person's recent sign-ins show the address and the
browser's name (never the user agent), the data file holds neither in the clear, and a header
out of bounds is a 422 with nothing recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import select

from openmfa.node import audit
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.node.passwords import set_password
from openmfa.sdk.app import create_app
from openmfa.sdk.headers import ADDRESS_HEADER, AGENT_HEADER
from openmfa.store import tables as t
from openmfa.store.database import DataDir, Store
from openmfa.wiring import NodeRuntime
from tests.conftest import make_config

FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0"


def test_sign_ins_say_address_and_browser(tmp_path: Path) -> None:
    config = make_config()
    store = Store.create(DataDir(tmp_path / "node"), config)
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    set_password(store, accounts, "alice", "correct horse")
    codes = accounts.enroll("alice", "backup-codes").backup_codes or []
    keys = ApiKeys(store)
    h = {"authorization": f"Bearer {keys.create('portal1', 'portal')}"}
    app = {"authorization": f"Bearer {keys.create('grafana', 'adapter')}"}
    browser = {ADDRESS_HEADER: "192.0.2.7", AGENT_HEADER: FIREFOX_ANDROID}

    async def scenario(c: httpx.AsyncClient) -> None:
        # Refusals first: a header out of bounds is refused before anything is checked.
        for bad in ({ADDRESS_HEADER: "x" * 65}, {AGENT_HEADER: "x" * 513}):
            r = await c.post(
                "/v1/portal/sign-in",
                json={"user": "alice", "password": "correct horse"},
                headers={**h, **bad},
            )
            assert r.status_code == 422, r.text
            assert r.json()["code"] == "invalid_input"
        first = await c.post(
            "/v1/portal/sign-in",
            json={"user": "alice", "password": "correct horse"},
            headers={**h, **browser},
        )
        assert first.status_code == 200, first.text
        ticket = first.json()["ticket"]
        bad_step = await c.post(
            "/v1/portal/second-factor",
            json={"ticket": ticket, "code": codes[0]},
            headers={**h, ADDRESS_HEADER: "y" * 65},
        )
        assert bad_step.status_code == 422, bad_step.text  # the code is not spent by it
        step = await c.post(
            "/v1/portal/second-factor",
            json={"ticket": ticket, "code": codes[0]},
            headers={**h, **browser},
        )
        assert step.json()["accepted"] is True, step.text
        token = step.json()["token"]
        verified = await c.post(
            "/v1/authenticate",
            json={"user": "alice", "code": "000000", "source": "203.0.113.5"},
            headers=app,
        )
        assert verified.status_code == 200, verified.text
        await c.post("/v1/authenticate", json={"user": "alice", "code": "000000"}, headers=app)
        mine = await c.get("/v1/portal/me/sign-ins", headers={**h, "x-openmfa-session": token})
        assert mine.status_code == 200, mine.text
        seen = [
            (e["action"], e["channel"], e["address"], e["browser"], e["system"])
            for e in mine.json()["events"]
        ]
        assert seen == [
            ("authenticate", "application", "", "", ""),  # it said nothing
            ("authenticate", "application", "203.0.113.5", "", ""),
            ("authenticate", "portal", "192.0.2.7", "Firefox", "Android"),
            ("portal.sign_in", "portal", "192.0.2.7", "Firefox", "Android"),
        ]

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
        with store.read() as conn:
            rows = conn.execute(select(t.audit.c.source_enc, t.audit.c.detail)).all()
        sealed = [r.source_enc for r in rows if r.source_enc]
        assert len(sealed) == 3
        stored = repr(rows)
        for clear in ("192.0.2.7", "203.0.113.5", "Firefox", "Android"):
            assert clear not in stored  # sealed at rest
    finally:
        store.close()


def test_a_change_made_through_the_portal_keeps_where_the_browser_was(tmp_path: Path) -> None:
    """A method added, one removed and the password changed through the portal's session, with
    the headers: each audit row's origin opens (with the node's key) to the browser's address
    and name; a header out of bounds is a 422 and changes nothing."""
    config = make_config()
    store = Store.create(DataDir(tmp_path / "node"), config)
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    set_password(store, accounts, "alice", "correct horse")
    codes = accounts.enroll("alice", "backup-codes").backup_codes or []
    keys = ApiKeys(store)
    h = {"authorization": f"Bearer {keys.create('portal1', 'portal')}"}
    browser = {ADDRESS_HEADER: "192.0.2.7", AGENT_HEADER: FIREFOX_ANDROID}

    async def scenario(c: httpx.AsyncClient) -> None:
        first = await c.post(
            "/v1/portal/sign-in", json={"user": "alice", "password": "correct horse"}, headers=h
        )
        step = await c.post(
            "/v1/portal/second-factor",
            json={"ticket": first.json()["ticket"], "code": codes[0]},
            headers=h,
        )
        me = {**h, "x-openmfa-session": step.json()["token"]}
        bad = await c.post("/v1/portal/me/backup-codes", headers={**me, AGENT_HEADER: "x" * 513})
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_input", bad.text
        assert [m.kind for m in accounts.list_methods("alice")] == ["backup-codes"]
        old = accounts.list_methods("alice")[0].id
        renewed = await c.post("/v1/portal/me/backup-codes", headers={**me, **browser})
        assert renewed.status_code == 201, renewed.text
        new = renewed.json()["method"]["id"]
        removed = await c.delete(f"/v1/portal/me/methods/{new}", headers={**me, **browser})
        assert removed.status_code == 204, removed.text
        changed = await c.post(
            "/v1/portal/me/password",
            json={"current": "correct horse", "new": "a much longer new one 7"},
            headers={**me, ADDRESS_HEADER: "198.51.100.9"},
        )
        assert changed.json()["changed"] is True, changed.text
        assert old != new

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
        with store.read() as conn:
            rows = conn.execute(
                select(t.audit.c.action, t.audit.c.result, t.audit.c.source_enc).where(
                    t.audit.c.action.in_(("method.add", "method.remove", "password.change"))
                )
            ).all()
        seen = [
            (r.action, audit.open_origin(store.box, "alice", r.source_enc)) for r in rows[1:]
        ]  # (the first: the codes enrolled above, from the command line: no origin)
        here = audit.Origin("192.0.2.7", "Firefox", "Android")
        assert rows[0].source_enc == ""
        assert seen == [
            ("method.remove", here),  # the old codes, replaced
            ("method.add", here),
            ("method.remove", here),
            ("password.change", audit.Origin("198.51.100.9")),
        ]
        assert "192.0.2.7" not in repr(rows)  # sealed at rest
    finally:
        store.close()


def test_the_lock_a_failed_portal_sign_in_ends_in_keeps_its_origin(tmp_path: Path) -> None:
    """Wrong passwords at the portal, with the headers, until the account locks: the
    ``lockout`` row (the notice "Your account was locked") carries the last attempt's origin."""
    config = make_config(policy={"lockout_threshold": 2})
    store = Store.create(DataDir(tmp_path / "node"), config)
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    set_password(store, accounts, "alice", "correct horse")
    accounts.enroll("alice", "backup-codes")
    h = {"authorization": f"Bearer {ApiKeys(store).create('portal1', 'portal')}"}

    async def scenario(c: httpx.AsyncClient) -> None:
        for address in ("192.0.2.1", "192.0.2.2"):
            r = await c.post(
                "/v1/portal/sign-in",
                json={"user": "alice", "password": "wrong"},
                headers={**h, ADDRESS_HEADER: address, AGENT_HEADER: FIREFOX_ANDROID},
            )
            assert r.status_code == 200 and r.json()["ticket"] in (None, ""), r.text

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
        with store.read() as conn:
            sealed = conn.execute(
                select(t.audit.c.source_enc).where(t.audit.c.action == "lockout")
            ).all()
        assert len(sealed) == 1
        assert audit.open_origin(store.box, "alice", sealed[0].source_enc) == audit.Origin(
            "192.0.2.2", "Firefox", "Android"
        )
    finally:
        store.close()
