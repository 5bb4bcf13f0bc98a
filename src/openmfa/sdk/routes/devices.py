"""Push devices: a user's devices and activation codes (admin keys), and the mobile service's
calls (``devices`` keys): activation, a device's signed poll and answer, new push requests.
"""

from __future__ import annotations

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ...node.apikeys import ApiClient
from ..http import _actor, _authorize, _body, _call, _int_param, _node, _run, json_response
from ..models import (
    ActivationCode,
    ActivationRequest,
    DeviceActivate,
    DeviceActivated,
    DeviceList,
    DevicePoll,
    PushEvents,
    PushOutcome,
    SignedMessage,
)
from ..table import WAIT, Declared, query_int, query_str


async def devices(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    found = await _call(request, "methods:read", lambda c: node.push.list_devices(name))
    return json_response(DeviceList(devices=found))


async def activation(request: Request) -> Response:
    node = _node(request)
    name = request.path_params["name"]
    client = await _authorize(request, "methods:write")
    body = await _body(request, ActivationRequest, node.max_body)
    code = await _run(
        client, lambda c: node.push.issue_activation(name, body.label, _actor(request, c))
    )
    return json_response(code, 201)


async def device(request: Request) -> Response:
    node = _node(request)
    name, device_id = request.path_params["name"], request.path_params["device_id"]

    def act(c: ApiClient) -> None:
        node.roles.guard(c, name)  # a helpdesk operator: not an operator, not themselves
        node.push.revoke(name, device_id, _actor(request, c))

    await _call(request, "devices:revoke", act)
    return Response(status_code=204)


async def device_activate(request: Request) -> Response:
    """The mobile service passes on a device's activation (code + public key, and the screen
    lock's credential where approvals need it)."""
    node = _node(request)
    client = await _authorize(request, "devices")
    b = await _body(request, DeviceActivate, node.max_body)
    # A write, decided at the master (the push service says not_master elsewhere).
    webpush = msgspec.structs.asdict(b.webpush) if b.webpush is not None else None
    done = await _run(
        client,
        lambda c: node.push.activate(
            b.code, b.alg, b.public_key, b.label, webpush, _actor(request, c), b.unlock
        ),
    )
    return json_response(done, 201)


async def device_poll(request: Request) -> Response:
    """A device's signed poll, passed on by the mobile service: who it is, what waits."""
    node = _node(request)
    client = await _authorize(request, "devices")
    b = await _body(request, SignedMessage, node.max_body)
    return json_response(await _run(client, lambda c: node.push.poll(b.payload, b.signature)))


async def push_answer(request: Request) -> Response:
    """A device's signed answer (an approval with the screen lock's assertion where the node
    requires it), passed on by the mobile service."""
    node = _node(request)
    client = await _authorize(request, "devices")
    b = await _body(request, SignedMessage, node.max_body)
    outcome = await _run(
        client,
        lambda c: node.push.answer(b.payload, b.signature, _actor(request, c), b.unlock),
    )
    node.push_hub.decided(outcome.id)
    return json_response(outcome)


async def push_events(request: Request) -> Response:
    """New push requests since ``after`` (``?boot=…&after=N&wait=S``), for the mobile service."""
    node = _node(request)
    await _authorize(request, "devices")
    await run_in_threadpool(node.push.require_master)
    after = _int_param(request, "after", 0, 0, 2**62)
    wait = _int_param(request, "wait", 0, 0, 60)
    boot = request.query_params.get("boot", "")

    async def still() -> bool:  # a handover ends the wait: the caller is sent to the new master
        return bool(await run_in_threadpool(node.push.is_master))

    return json_response(await node.push_hub.events_after(boot, after, float(wait), still))


ROUTES: list[Declared] = [
    Declared(
        "GET",
        "/v1/users/{name}/devices",
        "methods:read",
        "List a user's push devices",
        None,
        DeviceList,
        200,
        devices,
    ),
    Declared(
        "POST",
        "/v1/users/{name}/devices/activation",
        "methods:write",
        "A single-use device activation code (shown once)",
        ActivationRequest,
        ActivationCode,
        201,
        activation,
    ),
    Declared(
        "DELETE",
        "/v1/users/{name}/devices/{device_id}",
        "devices:revoke",
        "Revoke a push device",
        None,
        None,
        204,
        device,
    ),
    Declared(
        "POST",
        "/v1/devices",
        "devices",
        "Activate a device (the mobile service passes on its code and public key)",
        DeviceActivate,
        DeviceActivated,
        201,
        device_activate,
    ),
    Declared(
        "POST",
        "/v1/devices/poll",
        "devices",
        "A device's signed poll: the push requests waiting for its user",
        SignedMessage,
        DevicePoll,
        200,
        device_poll,
    ),
    Declared(
        "POST",
        "/v1/push/answer",
        "devices",
        "A device's signed answer to a push request",
        SignedMessage,
        PushOutcome,
        200,
        push_answer,
    ),
    Declared(
        "GET",
        "/v1/push/events",
        "devices",
        "New push requests since ?after (?boot, ?wait up to 60 s), for the mobile service",
        None,
        PushEvents,
        200,
        push_events,
        query=(query_str("boot"), query_int("after", 0, 2**62, 0), WAIT),
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
