"""The signed-in user's password (``/v1/portal/me/password``, header ``X-OpenMFA-Session``):
where it can be changed here and what a new one needs, and the change itself — after a fresh
sign-in, with the current password (``node.password_change``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..http import _body, _node, _origin, _token, json_response
from ..models import PasswordChanged, PasswordPolicy, PortalPasswordChange
from ..table import Declared
from .portal_me import _session


async def portal_password(request: Request) -> Response:
    """GET: where the signed-in user's password can be changed here, and what a new one
    needs. POST: they change it (the current one and the new one); every other session of
    theirs ends, and the answer carries this session's new token."""
    node = _node(request)
    client, grant = await _session(request, fresh=True)
    if request.method == "GET":
        return json_response(node.password_change.policy())
    b = await _body(request, PortalPasswordChange, node.max_body)
    done = await node.password_change.change(
        grant,
        client.name,
        request.state.request_id,
        _token(request),
        b.current,
        b.new,
        _origin(request),
    )
    return json_response(done)


ROUTES: list[Declared] = [
    Declared(
        "GET",
        "/v1/portal/me/password",
        "portal",
        "Where the signed-in user's password can be changed here, what a new one needs (fresh)",
        None,
        PasswordPolicy,
        200,
        portal_password,
    ),
    Declared(
        "POST",
        "/v1/portal/me/password",
        "portal",
        "The signed-in user changes their password (the current one asked; a fresh sign-in)",
        PortalPasswordChange,
        PasswordChanged,
        200,
        portal_password,
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
