"""Users and their methods, for admin keys: list, create, change, delete, unlock, bypass,
enroll, remove and resynchronise.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ...errors import InvalidInput
from ...node.apikeys import ApiClient
from ..http import _actor, _authorize, _body, _call, _int_param, _node, _run, json_response
from ..models import (
    BypassGranted,
    BypassRequest,
    Enrollment,
    MethodCreate,
    MethodList,
    PinSet,
    Resynchronised,
    ResyncRequest,
    UserCreate,
    UserPage,
    UserPatch,
    UserView,
)
from ..table import LIMIT, Declared, query_str


async def users(request: Request) -> Response:
    node = _node(request)
    if request.method == "POST":
        client = await _authorize(request, "users:write")
        body = await _body(request, UserCreate, node.max_body)
        user = await _run(
            client,
            lambda c: node.accounts.add_user(
                body.name,
                display_name=body.display_name,
                email=body.email,
                phone=body.phone,
                actor=_actor(request, c),
            ),
        )
        return json_response(user, 201)
    limit = _int_param(request, "limit", 100, 1, 1000)
    after = request.query_params.get("after", "")
    state = request.query_params.get("state")
    if state is not None and state not in STATES:
        raise InvalidInput("query parameter state must be one of locked, disabled, active")
    q = request.query_params
    prefix, group = q.get("prefix", "")[:64], q.get("group", "")
    if len(group) > GROUP_MAX:  # refused with or without an email search
        raise InvalidInput(f"query parameter group is at most {GROUP_MAX} characters")
    email = request.query_params.get("email")
    if email is not None:  # everyone with this address (sealed at rest: node.user_search)
        same = await _call(request, "users:read", lambda c: node.user_search.by_email(email))
        return json_response(UserPage(users=same, next_after=None))
    found = await _call(
        request,
        "users:read",
        lambda c: node.user_search.listed(
            limit=limit, after=after, prefix=prefix, group=group, state=state or ""
        ),
    )
    return json_response(
        UserPage(users=found, next_after=found[-1].name if len(found) == limit else None)
    )


async def user(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    if request.method == "GET":
        return json_response(
            await _call(request, "users:read", lambda c: node.accounts.get_user(name))
        )
    if request.method == "DELETE":
        await _call(
            request, "users:write", lambda c: node.accounts.delete_user(name, _actor(request, c))
        )
        return Response(status_code=204)
    client = await _authorize(request, "users:write")
    patch = await _body(request, UserPatch, node.max_body)
    fields = msgspec.structs.asdict(patch)
    fields = {k: v for k, v in fields.items() if v is not msgspec.UNSET}
    default = fields.pop("default_method", None)

    def change(c: ApiClient) -> UserView:
        if fields or default is None:
            node.accounts.update_user(name, fields, _actor(request, c))
        if default is not None:
            node.accounts.set_default_method(name, default, _actor(request, c))
        return node.accounts.get_user(name)

    return json_response(await _run(client, change))


async def unlock(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]

    def act(c: ApiClient) -> UserView:
        node.roles.guard(c, name)  # a helpdesk operator: not an operator, not themselves
        return node.accounts.unlock(name, _actor(request, c))

    return json_response(await _call(request, "users:unlock", act))


async def group(request: Request) -> Response:
    node = _node(request)
    name, group = request.path_params["name"], request.path_params["group"]
    change = node.groups.add if request.method == "PUT" else node.groups.remove
    return json_response(
        await _call(request, "users:write", lambda c: change(name, group, _actor(request, c)))
    )


async def pin(request: Request) -> Response:
    """Set (``PUT``, body ``{pin}``) or clear (``DELETE``) a user's PIN (``node.pins``)."""
    node = _node(request)
    name = request.path_params["name"]
    if request.method == "PUT":
        client = await _authorize(request, "users:write")
        body = await _body(request, PinSet, node.max_body)
        return json_response(
            await _run(client, lambda c: node.pins.set(name, body.pin, _actor(request, c)))
        )
    return json_response(
        await _call(request, "users:write", lambda c: node.pins.clear(name, _actor(request, c)))
    )


async def bypass(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    client = await _authorize(request, "bypass")
    body = await _body(request, BypassRequest, node.max_body)

    def act(c: ApiClient) -> float:
        node.roles.guard(c, name)
        return node.accounts.grant_bypass(name, body.seconds, _actor(request, c))

    until = await _run(client, act)
    return json_response(BypassGranted(user=name, bypass_until=until))


async def methods(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    if request.method == "GET":
        found = await _call(request, "methods:read", lambda c: node.accounts.list_methods(name))
        return json_response(MethodList(methods=found))
    client = await _authorize(request, "methods:write")
    b = await _body(request, MethodCreate, node.max_body)
    enrolled = await _run(
        client,
        lambda c: node.accounts.enroll(
            name,
            b.kind,
            secret=b.secret,
            digits=b.digits,
            period=b.period,
            algorithm=b.algorithm,
            label=b.label,
            actor=_actor(request, c),
        ),
    )
    return json_response(enrolled, 201)


async def method(request: Request) -> Response:
    node = _node(request)
    name, method_id = request.path_params["name"], request.path_params["method_id"]
    await _call(
        request,
        "methods:write",
        lambda c: node.accounts.remove_method(name, method_id, _actor(request, c)),
    )
    return Response(status_code=204)


async def resync(request: Request) -> Response:
    node = _node(request)
    name, method_id = request.path_params["name"], request.path_params["method_id"]
    client = await _authorize(request, "methods:resync")
    b = await _body(request, ResyncRequest, node.max_body)
    ok = await _run(
        client,
        lambda c: node.accounts.resync_hotp(name, method_id, b.first, b.second, _actor(request, c)),
    )
    return json_response(Resynchronised(resynchronised=ok))


EMAIL = {
    "name": "email",
    "in": "query",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
"""``?email``: an address to find (compared lower-cased, spaces around it ignored)."""
STATES = ("locked", "disabled", "active")
STATE = {"name": "state", "in": "query", "schema": {"type": "string", "enum": list(STATES)}}
"""``?state``: only users locked now, disabled, or neither (``node.user_search``)."""
GROUP_MAX = 128
GROUP = {"name": "group", "in": "query", "schema": {"type": "string", "maxLength": GROUP_MAX}}
"""``?group``: only the members of the group of this exact name."""

ROUTES: list[Declared] = [
    Declared(
        "GET",
        "/v1/users",
        "users:read",
        "List users (?limit, ?after; ?prefix: only names that start with it; ?group: only its "
        "members; ?state: locked, disabled or active), or find everyone with an email address "
        "(?email)",
        None,
        UserPage,
        200,
        users,
        query=(LIMIT, query_str("after"), query_str("prefix"), GROUP, STATE, EMAIL),
    ),
    Declared("POST", "/v1/users", "users:write", "Create a user", UserCreate, UserView, 201, users),
    Declared("GET", "/v1/users/{name}", "users:read", "Show a user", None, UserView, 200, user),
    Declared(
        "PATCH", "/v1/users/{name}", "users:write", "Change a user", UserPatch, UserView, 200, user
    ),
    Declared(
        "DELETE",
        "/v1/users/{name}",
        "users:write",
        "Delete a user and their methods",
        None,
        None,
        204,
        user,
    ),
    Declared(
        "POST",
        "/v1/users/{name}/unlock",
        "users:unlock",
        "Clear a lockout",
        None,
        UserView,
        200,
        unlock,
    ),
    Declared(
        "PUT",
        "/v1/users/{name}/groups/{group}",
        "users:write",
        "Put a user in a group by hand (data format 11; no change if in it by hand already)",
        None,
        UserView,
        200,
        group,
    ),
    Declared(
        "DELETE",
        "/v1/users/{name}/groups/{group}",
        "users:write",
        "Take a user out of a group they were put in by hand (a directory's group: 409)",
        None,
        UserView,
        200,
        group,
    ),
    Declared(
        "PUT",
        "/v1/users/{name}/pin",
        "users:write",
        "Set a user's PIN, typed before the code where a policy rule says pin=required (data "
        "format 13; stored as an argon2id hash, never shown)",
        PinSet,
        UserView,
        200,
        pin,
    ),
    Declared(
        "DELETE",
        "/v1/users/{name}/pin",
        "users:write",
        "Clear a user's PIN (no change if they have none)",
        None,
        UserView,
        200,
        pin,
    ),
    Declared(
        "POST",
        "/v1/users/{name}/bypass",
        "bypass",
        "Grant a one-time bypass",
        BypassRequest,
        BypassGranted,
        200,
        bypass,
    ),
    Declared(
        "GET",
        "/v1/users/{name}/methods",
        "methods:read",
        "List a user's methods",
        None,
        MethodList,
        200,
        methods,
    ),
    Declared(
        "POST",
        "/v1/users/{name}/methods",
        "methods:write",
        "Enroll a method (secret shown once)",
        MethodCreate,
        Enrollment,
        201,
        methods,
    ),
    Declared(
        "DELETE",
        "/v1/users/{name}/methods/{method_id}",
        "methods:write",
        "Remove a method",
        None,
        None,
        204,
        method,
    ),
    Declared(
        "POST",
        "/v1/users/{name}/methods/{method_id}/resync",
        "methods:resync",
        "Resynchronise an HOTP token with two consecutive codes",
        ResyncRequest,
        Resynchronised,
        200,
        resync,
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
