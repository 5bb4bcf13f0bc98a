"""Groups through the SDK app in process (a real node runtime on SQLite): a person put in a
group and taken out by hand, groups in the user view and the OpenAPI document, and every
refusal a clear error, never a 5xx."""

from __future__ import annotations

import httpx
from sqlalchemy import delete, insert

from openmfa.config import Config
from openmfa.node.apikeys import ApiKeys
from openmfa.node.groups import groups_change
from openmfa.sdk import models
from openmfa.store import tables as t
from openmfa.store.changes import ChangeWriter
from openmfa.store.database import Store
from tests.sdk.test_app import run_app


def test_groups_by_hand_through_the_sdk(store: Store, config: Config) -> None:
    h = {"authorization": f"Bearer {ApiKeys(store).create('admin', 'admin')}"}
    dmz = {"authorization": f"Bearer {ApiKeys(store).create('portal', 'portal')}"}

    async def scenario(c: httpx.AsyncClient) -> None:
        assert (await c.post("/v1/users", json={"name": "alice"}, headers=h)).status_code == 201
        r = await c.put("/v1/users/alice/groups/VPN%20users", headers=h)
        assert r.status_code == 200, r.text
        assert models.UserView(**r.json()).manual_groups == ["VPN users"]
        with store.read() as conn:
            user_id = conn.scalar(t.users.select().with_only_columns(t.users.c.id))
        ChangeWriter(store).commit([groups_change(user_id, "directory", ["staff"], [])])
        got = models.UserView(**(await c.get("/v1/users/alice", headers=h)).json())
        assert (got.groups, got.manual_groups, got.directory_groups) == (
            ["VPN users", "staff"],
            ["VPN users"],
            ["staff"],
        )
        listed = (await c.get("/v1/users", headers=h)).json()["users"]
        assert listed[0]["groups"] == ["VPN users", "staff"]
        r = await c.delete("/v1/users/alice/groups/VPN%20users", headers=h)
        assert r.status_code == 200 and r.json()["groups"] == ["staff"]

        async def refused(method: str, path: str, status: int, code: str, **kw: object) -> str:
            r = await c.request(method, path, **kw)  # type: ignore[arg-type]
            assert r.status_code == status, (path, r.status_code, r.text)
            assert r.json()["code"] == code and r.json()["request_id"]
            return str(r.json()["message"])

        await refused("PUT", "/v1/users/nobody/groups/vpn", 404, "not_found", headers=h)
        await refused("PUT", "/v1/users/alice/groups/a,b", 422, "invalid_input", headers=h)
        await refused("PUT", "/v1/users/alice/groups/%E2%80%8B", 422, "invalid_input", headers=h)
        await refused("PUT", "/v1/users/alice/groups/" + "x" * 129, 422, "invalid_input", headers=h)
        await refused("DELETE", "/v1/users/alice/groups/vpn", 404, "not_found", headers=h)
        said = await refused("DELETE", "/v1/users/alice/groups/staff", 409, "conflict", headers=h)
        assert "directory" in said
        await refused("PUT", "/v1/users/alice/groups/vpn", 403, "forbidden", headers=dmz)
        await refused("PUT", "/v1/users/alice/groups/vpn", 401, "unauthorized")
        r = await c.put("/v1/users/alice/groups/a%2Fb", headers=h)  # '/' is no group's name
        assert r.status_code == 404
        with store.write() as conn:  # a farm not yet finalized at format 11
            conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
            conn.execute(insert(t.meta).values(key="data_format", value="10"))
        said = await refused("PUT", "/v1/users/alice/groups/vpn", 409, "conflict", headers=h)
        assert "data format 11" in said
        doc = (await c.get("/v1/openapi.json")).json()
        route = doc["paths"]["/v1/users/{name}/groups/{group}"]
        assert set(route) >= {"put", "delete"}
        params = {p["name"] for p in route["put"]["parameters"]}
        assert params >= {"name", "group"}
        assert "groups" in doc["components"]["schemas"]["UserView"]["properties"]

    run_app(store, config, scenario)
