"""The Web Service SDK as an ASGI application (Starlette), made from the route table.

Every route checks the caller's API key and its scope first, before it reads a body, and
every error leaves as JSON ``{"code", "message", "request_id"}``. Authentications go through
the node's commit queue; other calls run in the thread pool against the same node services the
CLI uses. The node itself (``wiring.NodeRuntime``) is started by ``openmfa serve``.

The routes live in ``sdk.routes`` (one module per group, each declaring its routes next to
their handlers), what they share in ``sdk.http``, the error answers and request ids in
``sdk.error_handlers``; here they are put together.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette

from ..wiring import NodeRuntime
from .error_handlers import EXCEPTION_HANDLERS, RequestIds
from .http import _encode
from .openapi import document
from .routes import TABLE
from .routes.authenticate import Authenticate
from .table import starlette_routes


def create_app(
    node: NodeRuntime,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    """The SDK's routes over a running node (``openmfa serve`` gives the lifespan that starts
    and stops it)."""
    openapi_doc = _encode(document(int(node.config.get("policy", "bypass_max_seconds"))))
    authenticate = Authenticate(node)  # served by RequestIds; the route names it for the router
    routes = [
        *starlette_routes(TABLE, {Authenticate: authenticate}),
        *node.farm.routes(),  # the farm's own routes (not SDK routes: not in the document)
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    app.state.node = node
    app.state.openapi = openapi_doc
    app.add_middleware(RequestIds, authenticate=authenticate)
    return app


__all__ = ["create_app"]
