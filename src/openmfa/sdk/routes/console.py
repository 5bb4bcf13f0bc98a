"""The administration console's node side: an operator signs in (``console`` keys: the portal's
steps, ending in an operator token, ``node.console_sign_in``); an operator's role is set; the
helpdesk gives a temporary access code. Every other console call is an ordinary route asked with
the operator's token (``X-OpenMFA-Operator``), decided by the role (``node.roles``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ...node.apikeys import ApiClient
from ..http import _actor, _authorize, _body, _call, _node, _origin, _run, json_response
from ..models import (
    AccessCodeIssued,
    AccessCodeRequest,
    PasskeyAnswer,
    PasskeyChallenge,
    PasskeyOptions,
    PortalSecondFactor,
    PortalSignIn,
    PortalStep,
    RoleSet,
    UserView,
)
from ..table import Declared


async def console_sign_in(request: Request) -> Response:
    """The operator's first factor -> a ticket for the second."""
    node = _node(request)
    client = await _authorize(request, "console")
    b = await _body(request, PortalSignIn, node.max_body)
    step = await node.console.first(
        b.user, b.password, client.name, request.state.request_id, _origin(request)
    )
    return json_response(step)


async def console_second_factor(request: Request) -> Response:
    """A push (or, where a rule allows it, a code) -> the operator token."""
    node = _node(request)
    client = await _authorize(request, "console")
    b = await _body(request, PortalSecondFactor, node.max_body)
    step = await node.console.second(
        b.ticket,
        client.name,
        request.state.request_id,
        code=b.code,
        method=b.method,
        push_id=b.push_id,
        wait=b.wait,
        origin=_origin(request),
        pin=b.pin,
    )
    return json_response(step)


async def console_passkey_options(request: Request) -> Response:
    node = _node(request)
    client = await _authorize(request, "console")
    b = await _body(request, PasskeyOptions, node.max_body)
    return json_response(await node.console.passkey_options(b.ticket, client.name, b.origin))


async def console_passkey(request: Request) -> Response:
    node = _node(request)
    client = await _authorize(request, "console")
    b = await _body(request, PasskeyAnswer, node.max_body)
    step = await node.console.passkey(
        b.ticket, client.name, request.state.request_id, b.challenge, b.credential, _origin(request)
    )
    return json_response(step)


async def role(request: Request) -> Response:
    """Give a person an operator role (``PUT``, body ``{role}``) or take it away (``DELETE``)."""
    node = _node(request)
    name = request.path_params["name"]
    if request.method == "PUT":
        client = await _authorize(request, "roles")
        b = await _body(request, RoleSet, node.max_body)
        return json_response(
            await _run(client, lambda c: node.roles.set(name, b.role, _actor(request, c)))
        )
    return json_response(
        await _call(request, "roles", lambda c: node.roles.set(name, "none", _actor(request, c)))
    )


async def access_code(request: Request) -> Response:
    """A temporary access code for a person who lost their phone (shown once)."""
    node = _node(request)
    name = request.path_params["name"]
    client = await _authorize(request, "access-code")
    b = await _body(request, AccessCodeRequest, node.max_body)

    def act(c: ApiClient) -> tuple[str, float]:
        node.roles.guard(c, name)  # a helpdesk operator: not an operator, not themselves
        return node.accounts.issue_access_code(name, b.minutes, _actor(request, c))

    code, until = await _run(client, act)
    return json_response(AccessCodeIssued(user=name, code=code, expires_at=until), 201)


def _sign_in(
    path: str,
    summary: str,
    body: type[msgspec.Struct],
    answer: type[msgspec.Struct],
    handler: Callable[[Request], Awaitable[Response]],
) -> Declared:
    return Declared("POST", path, "console", summary, body, answer, 200, handler)


ROUTES: list[Declared] = [
    _sign_in(
        "/v1/console/sign-in",
        "An operator's first factor (the portal's [portal] primary) -> a ticket; only a person "
        "with a role (not_an_operator)",
        PortalSignIn,
        PortalStep,
        console_sign_in,
    ),
    _sign_in(
        "/v1/console/second-factor",
        "An operator's second factor: a numbered push (method push, then push_id), or a code "
        "where a policy rule names code kinds -> an operator token for X-OpenMFA-Operator",
        PortalSecondFactor,
        PortalStep,
        console_second_factor,
    ),
    _sign_in(
        "/v1/console/passkey/options",
        "An operator's passkey sign-in begins (the ticket): the browser's options",
        PasskeyOptions,
        PasskeyChallenge,
        console_passkey_options,
    ),
    _sign_in(
        "/v1/console/passkey",
        "The browser's answer to an operator's passkey sign-in -> an operator token",
        PasskeyAnswer,
        PortalStep,
        console_passkey,
    ),
    Declared(
        "PUT",
        "/v1/users/{name}/role",
        "roles",
        "Give a user an operator role in the administration console: admin, helpdesk or "
        "auditor (none: take it away; data format 15)",
        RoleSet,
        UserView,
        200,
        role,
    ),
    Declared(
        "DELETE",
        "/v1/users/{name}/role",
        "roles",
        "Take a user's operator role away (no change if they have none)",
        None,
        UserView,
        200,
        role,
    ),
    Declared(
        "POST",
        "/v1/users/{name}/access-code",
        "access-code",
        "A temporary access code (shown once): it signs the user in once, until it expires, so "
        "they can enroll a new method; replaces their earlier one",
        AccessCodeRequest,
        AccessCodeIssued,
        201,
        access_code,
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
