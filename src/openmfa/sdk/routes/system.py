"""The node's own routes: liveness, readiness, versions, Prometheus metrics and the OpenAPI
document. None needs an API key.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ... import __version__
from ...errors import NotReady
from ...metrics import endpoint as metrics_endpoint
from ...store.database import DATA_FORMAT, READS_FORMATS
from ..http import JSON, _node, json_response
from ..models import SDK_VERSIONS, Health, VersionInfo
from ..table import Declared


async def healthz(request: Request) -> Response:
    return json_response(Health(status="ok"))


async def readyz(request: Request) -> Response:
    ready, why = _node(request).readiness.state()  # from memory: never waits (node.readiness)
    if ready:
        return json_response(Health(status="ready"))
    raise NotReady(why)


async def version(request: Request) -> Response:
    node = _node(request)
    fmt = await run_in_threadpool(node.store.data_format)
    return json_response(
        VersionInfo(
            release=__version__,
            data_format=fmt,
            writes_format=DATA_FORMAT,
            reads_formats=list(READS_FORMATS),
            node=node.store.node_name,
            sdk_versions=list(SDK_VERSIONS),
        )
    )


async def metrics(request: Request) -> Response:
    """Prometheus text format (``node.metrics``); no key: counts only, no names."""
    registry = _node(request).metrics
    return await run_in_threadpool(metrics_endpoint, registry)


async def openapi(request: Request) -> Response:
    return Response(request.app.state.openapi, media_type=JSON)


ROUTES: list[Declared] = [
    Declared("GET", "/healthz", None, "The process is up", None, Health, 200, healthz),
    Declared(
        "GET",
        "/readyz",
        None,
        "The node can serve (answered from memory)",
        None,
        Health,
        200,
        readyz,
    ),
    Declared(
        "GET",
        "/version",
        None,
        "Release, data-format and SDK versions",
        None,
        VersionInfo,
        200,
        version,
    ),
    Declared(
        "GET",
        "/metrics",
        None,
        "Prometheus text format: counts only, no names",
        None,
        None,
        200,
        metrics,
        documented=False,
    ),
    Declared(
        "GET", "/v1/openapi.json", None, "This document", None, None, 200, openapi, documented=False
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
