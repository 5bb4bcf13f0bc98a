"""The SDK app in process (httpx's ASGI transport over a real node runtime on SQLite): the
shape of answers and errors, the caller checked before the body, what the contract promises."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from openmfa.config import Config
from openmfa.node.apikeys import ApiKeys
from openmfa.sdk import models
from openmfa.sdk.app import create_app
from openmfa.store.database import Store
from openmfa.wiring import NodeRuntime


def run_app(store: Store, config: Config, scenario: object) -> None:
    async def main() -> None:
        node = NodeRuntime(store, config, radius_listen="")
        await node.start()
        try:
            transport = httpx.ASGITransport(app=create_app(node))
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
                await scenario(c)  # type: ignore[operator]
        finally:
            await node.stop()

    asyncio.run(main())


def test_answers_errors_and_the_contract(store: Store, config: Config, tmp_path: Path) -> None:
    token = ApiKeys(store).create("admin", "admin")
    h = {"authorization": f"Bearer {token}"}

    async def scenario(c: httpx.AsyncClient) -> None:
        assert (await c.get("/readyz")).json() == {"status": "ready"}
        version = models.VersionInfo(**(await c.get("/version")).json())
        assert version.sdk_versions == list(models.SDK_VERSIONS)
        r = await c.request("TRACE", "/v1/users", headers=h)
        assert r.status_code == 405 and set(r.headers["allow"].split(", ")) >= {"GET", "POST"}
        assert r.json()["code"] == "method_not_allowed" and r.json()["request_id"]
        # no key: refused before the body is read (a broken body is not even looked at)
        r = await c.post("/v1/users", content=b"{broken")
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        r = await c.post("/v1/users", json={"name": "alice", "email": "a@example.org"}, headers=h)
        assert r.status_code == 201 and models.UserView(**r.json()).name == "alice"
        r = await c.post("/v1/users", json={"name": "bad\u0007name"}, headers=h)
        assert r.status_code == 422
        r = await c.post("/v1/users/alice/bypass", json={"seconds": 30.0}, headers=h)
        assert r.status_code == 200  # 30.0 is the integer 30
        r = await c.post("/v1/users/alice/bypass", json={"seconds": 30.5}, headers=h)
        assert r.status_code == 422
        doc = (await c.get("/v1/openapi.json")).json()
        seconds = doc["components"]["schemas"]["BypassRequest"]["properties"]["seconds"]
        assert seconds["maximum"] == config.get("policy", "bypass_max_seconds")
        name = doc["components"]["schemas"]["UserCreate"]["properties"]["name"]
        assert name["pattern"] == models.NAME_PATTERN and re.fullmatch(name["pattern"], "alice")
        r = await c.post("/v1/authenticate", json={"user": "alice", "code": ""}, headers=h)
        assert r.json()["accepted"] is True and r.json()["reason"] == "bypass"

    run_app(store, config, scenario)


def test_a_subordinate_sends_push_callers_to_its_master(store: Store, config: Config) -> None:
    """Push requests live at the master: every push route of a subordinate answers not_master
    with the master's URL (the clients follow it: push calls are routed like writes)."""
    from sqlalchemy import delete, insert

    from openmfa.sdk.client import Requests
    from openmfa.store import tables as t

    token = ApiKeys(store).create("admin", "admin")
    h = {"authorization": f"Bearer {token}"}
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key.in_(("farm.role", "farm.master_url"))))
        conn.execute(
            insert(t.meta),
            [
                {"key": "farm.role", "value": "subordinate"},
                {"key": "farm.master_url", "value": "http://master:8480"},
            ],
        )
    signed = {"payload": "e30", "signature": "AA"}

    async def scenario(c: httpx.AsyncClient) -> None:
        for verb, path, body in (
            ("POST", "/v1/authenticate", {"user": "alice", "method": "push"}),
            ("GET", "/v1/authenticate/p0", None),
            ("POST", "/v1/devices/poll", signed),
            ("POST", "/v1/push/answer", signed),
            ("GET", "/v1/push/events", None),
            ("POST", "/v1/users/alice/devices/activation", {}),
        ):
            r = await c.request(verb, path, json=body, headers=h)
            assert r.status_code == 409, (path, r.text)
            assert r.json()["code"] == "not_master", path
            assert r.json()["master_url"] == "http://master:8480", path
        # A code is still checked here, as on every node.
        r = await c.post("/v1/authenticate", json={"user": "alice", "code": "123456"}, headers=h)
        assert r.status_code == 200 and r.json()["reason"] == "unknown_user"

    run_app(store, config, scenario)
    assert Requests.authenticate("alice", push=True).kind == "write"
    assert Requests.authenticate("alice", "123456").kind == "authenticate"
    for call in (
        Requests.push_outcome("p0"),
        Requests.poll_device("a", "b"),
        Requests.push_events(),
    ):
        assert call.kind == "write"


def test_numbers_that_python_calls_digits_but_cannot_read_are_a_400(
    store: Store, config: Config
) -> None:
    """ "²" is a digit to ``str.isdigit`` and no number to ``int``: a query parameter or a
    Content-Length made of it (or of thousands of digits) is the caller's mistake (422, 400),
    never a 500."""
    admin = {"authorization": f"Bearer {ApiKeys(store).create('admin', 'admin')}"}
    portal = {"authorization": f"Bearer {ApiKeys(store).create('portal', 'portal')}"}

    async def scenario(c: httpx.AsyncClient) -> None:
        for value in ("²", "1²", "9" * 5000, "-1", "", "1e3"):
            r = await c.get("/v1/portal/sessions/ended", params={"after": value}, headers=portal)
            assert r.status_code == 422 and r.json()["code"] == "invalid_input", (value, r.text)
            r = await c.get("/v1/audit", params={"limit": value}, headers=admin)
            assert r.status_code == 422, (value, r.text)
        r = await c.post(
            "/v1/users", content=b"{}", headers={**admin, "content-length": "²".encode("latin-1")}
        )
        assert r.status_code == 400, r.text
        r = await c.get("/v1/portal/sessions/ended", params={"after": "0"}, headers=portal)
        assert r.status_code == 200 and r.json()["ends"] == []

    run_app(store, config, scenario)
