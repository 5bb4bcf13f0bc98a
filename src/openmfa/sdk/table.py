"""The SDK's route table: each route declared once, next to its handler (every module of
``sdk.routes`` exports its ``ROUTES``; ``sdk.routes.TABLE`` collects them).

The app's routing (``starlette_routes``) and the OpenAPI document (``sdk.openapi``) are both
made from the table, so a route cannot be served undocumented or documented unserved;
tests/sdk/test_route_table.py checks the running app against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import msgspec
from starlette.routing import Route
from starlette.types import ASGIApp


class Declared(NamedTuple):
    """One SDK route: what the document says of it and the handler that serves it."""

    method: str
    """The HTTP method, upper case ("GET"; a GET route answers HEAD too)."""
    path: str
    permission: str | None
    """What the caller's API key must allow (``None``: no key needed)."""
    summary: str
    request: type[msgspec.Struct] | None
    """The body's type, decoded by the handler (``None``: no body)."""
    answer: type[msgspec.Struct] | None
    """The success answer's type (``None``: no body)."""
    status: int
    """The success status."""
    handler: Callable[..., Any]
    """An async function of the request, or a plain ASGI endpoint's class that the app builds
    once over its node (``routes.authenticate.Authenticate``)."""
    documented: bool = True
    """False only for the metrics and the document itself, which the document does not list."""
    query: tuple[dict[str, Any], ...] = ()
    """The query parameters the handler reads, as the document states them (``query_int``…)."""


def query_int(name: str, lo: int, hi: int, default: int) -> dict[str, Any]:
    """An integer query parameter in ``lo..hi`` (the handler reads it with ``_int_param``)."""
    schema = {"type": "integer", "minimum": lo, "maximum": hi, "default": default}
    return {"name": name, "in": "query", "schema": schema}


def query_str(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "string"}}


def query_bool(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "boolean", "default": False}}


LIMIT = query_int("limit", 1, 1000, 100)
WAIT = query_int("wait", 0, 60, 0)
SINCE = {
    "name": "since",
    "in": "query",
    "description": "seconds since the epoch, or an ISO 8601 time",
    "schema": {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]},
}


def starlette_routes(table: Iterable[Declared], built: Mapping[Any, ASGIApp]) -> list[Route]:
    """One Starlette route per path with every method the table declares on it (so that a
    wrong method gets 405 with the path's whole ``Allow``), in the table's order; ``built``
    gives the endpoint built for a handler that is a class."""
    endpoints: dict[str, Callable[..., Any]] = {}
    methods: dict[str, list[str]] = {}
    for d in table:
        endpoint = built.get(d.handler, d.handler)
        if endpoints.setdefault(d.path, endpoint) is not endpoint:
            raise ValueError(f"{d.path} is declared with two handlers; a path has one")
        if d.method in methods.get(d.path, []):
            raise ValueError(f"{d.method} {d.path} is declared twice")
        methods.setdefault(d.path, []).append(d.method)
    return [Route(path, endpoint, methods=methods[path]) for path, endpoint in endpoints.items()]
