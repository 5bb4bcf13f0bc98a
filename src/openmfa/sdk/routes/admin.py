"""What an administrator did on a node's shell and can now do through the SDK (the console's
pages): API keys (list, create — the token shown once —, revoke) and the farm as this node sees
it. API keys are administrators' only; the farm's status every operator may read
(``node.roles``). A token file's import is with the tokens (``routes.tokens``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ...farm.status import farm_view
from ..http import _authorize, _body, _call, _node, _run, json_response
from ..models import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    FarmView,
)
from ..table import Declared


async def api_keys(request: Request) -> Response:
    """GET: every key; POST: a new one."""
    node = _node(request)
    if request.method == "POST":
        return await _api_key_create(request)
    keys = await _call(request, "apikeys", lambda c: node.apikeys.list())
    return json_response(ApiKeyList(keys=keys))


async def _api_key_create(request: Request) -> Response:
    node = _node(request)
    client = await _authorize(request, "apikeys")
    b = await _body(request, ApiKeyCreate, node.max_body)

    def create(c: object) -> ApiKeyCreated:
        token = node.apikeys.create(
            b.name, b.scope, expires_days=b.expires_days, client=client.name
        )
        made = next((k for k in node.apikeys.list() if k.name == b.name), None)
        expires = made.expires_at if made is not None else None  # (revoked at once: gone)
        return ApiKeyCreated(name=b.name, scope=b.scope, token=token, expires_at=expires)

    return json_response(await _run(client, create), status=201)


async def api_key(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    await _call(request, "apikeys", lambda c: node.apikeys.revoke(name, client=c.name))
    return Response(status_code=204)


async def farm_status(request: Request) -> Response:
    node = _node(request)
    return json_response(await _call(request, "farm:read", lambda c: farm_view(node.store)))


ROUTES: list[Declared] = [
    Declared(
        "GET",
        "/v1/apikeys",
        "apikeys",
        "Every API key: name, scope, made, expires, revoked (never a token)",
        None,
        ApiKeyList,
        200,
        api_keys,
    ),
    Declared(
        "POST",
        "/v1/apikeys",
        "apikeys",
        "Make an API key; its token is in this answer only",
        ApiKeyCreate,
        ApiKeyCreated,
        201,
        api_keys,
    ),
    Declared(
        "DELETE",
        "/v1/apikeys/{name}",
        "apikeys",
        "Revoke an API key (not the one this request came with)",
        None,
        None,
        204,
        api_key,
    ),
    Declared(
        "GET",
        "/v1/farm/status",
        "farm:read",
        "The farm as this node sees it: every node (role, release, lag, health) and every "
        "host beside them",
        None,
        FarmView,
        200,
        farm_status,
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
