"""The route table is the truth: the app built by ``create_app`` over a real node serves exactly
the routes the table declares (path, method and handler), each of them reachable through the
whole middleware stack, and the OpenAPI document lists exactly the table's documented routes.

The farm's own routes (``node.farm.routes()``: node-to-node calls, not SDK routes) are mounted
beside the table's and are its only exception.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from openmfa.config import Config
from openmfa.sdk.app import create_app
from openmfa.sdk.openapi import document
from openmfa.sdk.routes import TABLE
from openmfa.sdk.table import Declared
from openmfa.store.database import Store
from openmfa.wiring import NodeRuntime

UNDOCUMENTED = {("GET", "/metrics"), ("GET", "/v1/openapi.json")}
"""The only routes the document does not list: the metrics and the document itself."""


def served(app: Starlette) -> dict[tuple[str, str], Any]:
    """(method, path) -> endpoint of every route the app serves (HEAD goes with GET)."""
    found: dict[tuple[str, str], Any] = {}
    for route in app.routes:
        assert isinstance(route, Route), f"{route!r} is not a plain route"
        methods = route.methods or set()
        assert "HEAD" not in methods or "GET" in methods, f"{route.path} has HEAD without GET"
        for method in methods - {"HEAD"}:
            assert (method, route.path) not in found, f"{method} {route.path} is served twice"
            found[method, route.path] = route.endpoint
    return found


def declared() -> dict[tuple[str, str], Declared]:
    table: dict[tuple[str, str], Declared] = {}
    for d in TABLE:
        assert (d.method, d.path) not in table, f"{d.method} {d.path} is declared twice"
        table[d.method, d.path] = d
    return table


def serves_as_declared(endpoint: Any, d: Declared) -> bool:
    """The endpoint is the declared handler, or the app's one instance of a declared class."""
    return isinstance(endpoint, d.handler) if isinstance(d.handler, type) else endpoint is d.handler


def differences(app: Starlette, farm: set[tuple[str, str]]) -> list[str]:
    """What the app serves and the table does not declare, and the other way round."""
    sdk = {k: v for k, v in served(app).items() if k not in farm}
    table = declared()
    problems = [f"served but not declared: {m} {p}" for m, p in sorted(sdk.keys() - table.keys())]
    problems += [f"declared but not served: {m} {p}" for m, p in sorted(table.keys() - sdk.keys())]
    problems += [
        f"{m} {p} is served by {sdk[m, p]!r}, declared with {table[m, p].handler!r}"
        for m, p in sorted(sdk.keys() & table.keys())
        if not serves_as_declared(sdk[m, p], table[m, p])
    ]
    return problems


Check = Callable[[Starlette, NodeRuntime, httpx.AsyncClient], Awaitable[None]]


def with_app(store: Store, config: Config, check: Check) -> None:
    """``check`` over the app ``create_app`` builds on a started node (as tests/sdk/test_app.py
    runs it), with a client of it."""

    async def main() -> None:
        node = NodeRuntime(store, config, radius_listen="")
        await node.start()
        try:
            app = create_app(node)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
                await check(app, node, c)
        finally:
            await node.stop()

    asyncio.run(main())


def test_the_app_serves_exactly_the_table(store: Store, config: Config) -> None:
    async def check(app: Starlette, node: NodeRuntime, c: httpx.AsyncClient) -> None:
        farm = {(m, r.path) for r in node.farm.routes() for m in (r.methods or set()) - {"HEAD"}}
        assert farm and all(p.startswith("/v1/farm/") for _, p in farm)
        assert farm <= served(app).keys()
        assert not farm & declared().keys()
        assert differences(app, farm) == []

    with_app(store, config, check)


def test_every_declared_route_answers_through_the_whole_app(store: Store, config: Config) -> None:
    """Asked without a key, each declared route and method answers as itself: a route that
    needs no key with its success status, any other as unauthorized — never "no such route"
    nor "method not allowed"."""

    async def check(app: Starlette, node: NodeRuntime, c: httpx.AsyncClient) -> None:
        for d in TABLE:
            r = await c.request(d.method, re.sub(r"\{\w+\}", "x", d.path), content=b"{}")
            if d.permission is None:
                assert r.status_code == d.status, (d.method, d.path, r.text)
            else:
                assert r.status_code == 401, (d.method, d.path, r.text)
                assert r.json()["code"] == "unauthorized"

    with_app(store, config, check)


def test_the_document_lists_exactly_the_documented_routes() -> None:
    doc = document()
    listed = {(verb.upper(), path) for path, ops in doc["paths"].items() for verb in ops}
    table = declared()
    documented = {k for k, d in table.items() if d.documented}
    assert sorted(documented - listed) == [], "declared, but missing from the document"
    assert sorted(listed - documented) == [], "in the document, but not declared"
    assert {k for k, d in table.items() if not d.documented} == UNDOCUMENTED
    for (method, path), d in table.items():
        if not d.documented:
            continue
        op = doc["paths"][path][method.lower()]
        assert op["summary"] == d.summary
        assert [s for s in op["responses"] if s.startswith("2")] == [str(d.status)]
        answer = op["responses"][str(d.status)].get("content", {}).get("application/json", {})
        assert answer.get("schema", {}).get("$ref", "").rpartition("/")[2] == (
            d.answer.__name__ if d.answer else ""
        )
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        assert body.get("schema", {}).get("$ref", "").rpartition("/")[2] == (
            d.request.__name__ if d.request else ""
        )
        assert ("security" in op) == (d.permission is not None)
