"""What is held about one person: exported whole, or erased (``node.privacy``). An
administrator's (``users:write``): a helpdesk operator or an auditor is refused."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ...contract import Erased, PersonalData
from ..http import _actor, _call, _node, json_response
from ..table import Declared


async def export(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    return json_response(
        await _call(request, "users:write", lambda c: node.privacy.export(name, _actor(request, c)))
    )


async def erase(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    pseudonym = await _call(
        request, "users:write", lambda c: node.privacy.erase(name, _actor(request, c))
    )
    return json_response(Erased(pseudonym=pseudonym))


ROUTES: list[Declared] = [
    Declared(
        "GET",
        "/v1/users/{name}/export",
        "users:write",
        "Everything held about a person: account, methods and devices (no secrets), audit records",
        None,
        PersonalData,
        200,
        export,
    ),
    Declared(
        "POST",
        "/v1/users/{name}/erase",
        "users:write",
        "Erase a person: the account and all it holds; their audit records kept without name",
        None,
        Erased,
        200,
        erase,
    ),
]
