"""The OATH hardware-token inventory (imported by ``openmfa token import``): list, assign to a
user, remove. A seed never leaves.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ...node.apikeys import ApiClient
from ..http import (
    _actor,
    _authorize,
    _body,
    _bool_param,
    _call,
    _int_param,
    _node,
    _run,
    json_response,
)
from ..models import MethodView, TokenAssign, TokenPage
from ..table import LIMIT, Declared, query_bool, query_str


async def tokens(request: Request) -> Response:
    """The OATH token inventory (imported by ``openmfa token import``), never a seed."""
    node = _node(request)
    limit = _int_param(request, "limit", 100, 1, 1000)
    after = request.query_params.get("after", "")
    free = _bool_param(request, "unassigned")
    found = await _call(
        request,
        "methods:read",
        lambda c: node.tokens.inventory(unassigned=free, limit=limit, after=after),
    )
    return json_response(
        TokenPage(tokens=found, next_after=found[-1].serial if len(found) == limit else None)
    )


async def token_assign(request: Request) -> Response:
    """Give an inventory token to a user: it becomes one of their methods."""
    node = _node(request)
    serial = request.path_params["serial"]
    client = await _authorize(request, "tokens:assign")
    b = await _body(request, TokenAssign, node.max_body)

    def act(c: ApiClient) -> MethodView:
        node.roles.guard(c, b.user)  # a helpdesk operator: not an operator, not themselves
        return node.tokens.assign(serial, b.user, _actor(request, c))

    done = await _run(client, act)
    return json_response(done, 201)


async def token(request: Request) -> Response:
    """Remove a free token from the inventory."""
    node = _node(request)
    serial = request.path_params["serial"]
    await _call(request, "methods:write", lambda c: node.tokens.remove(serial, _actor(request, c)))
    return Response(status_code=204)


ROUTES: list[Declared] = [
    Declared(
        "GET",
        "/v1/tokens",
        "methods:read",
        "The OATH token inventory (?unassigned=true, ?limit, ?after); never a seed",
        None,
        TokenPage,
        200,
        tokens,
        query=(query_bool("unassigned"), LIMIT, query_str("after")),
    ),
    Declared(
        "POST",
        "/v1/tokens/{serial}/assign",
        "tokens:assign",
        "Give an inventory token to a user (it becomes their method)",
        TokenAssign,
        MethodView,
        201,
        token_assign,
    ),
    Declared(
        "DELETE",
        "/v1/tokens/{serial}",
        "methods:write",
        "Remove a free token from the inventory",
        None,
        None,
        204,
        token,
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
