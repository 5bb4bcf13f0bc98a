"""The OpenAPI 3.1 document of the Mobile App Web Service (what phones call), served at
``{prefix}/v1/openapi.json``. Schemas come from the classes that decode the phones' requests and
encode the answers (``openmfa.sdk.models``, the same the node uses); tests/e2e/test_push.py runs
schemathesis against a live service with it."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from .. import __version__
from ..core import push as proto
from ..sdk import models

REF = "#/components/schemas/{name}"

ERRORS = {
    "400": "Malformed request (not JSON)",
    "403": (
        "Refused: a wrong, forged, replayed or revoked device's signature (device_refused), a "
        "device clock more than 5 minutes off (device_clock), a used code (activation_refused), "
        "or a screen-lock credential or assertion that does not verify (unlock_refused: the "
        "code stays usable, the request stays pending)"
    ),
    "404": "No such push request, activation code or route",
    "409": (
        "The push request was answered or expired (push_closed); an activation without the "
        "screen-lock credential the server requires (unlock_required: the code stays usable)"
    ),
    "413": "Body too large",
    "422": "A value has the wrong type, length or range",
    "503": "The MFA server cannot be reached right now",
}

HEALTH = {
    "type": "object",
    "properties": {
        "status": {"enum": ["ok", "degraded"]},
        "held": {"type": "integer", "minimum": 0},
    },
    "required": ["status", "held"],
}
INFO = {
    "type": "object",
    "properties": {
        "service": {"const": "openmfa-mobile"},
        "version": {"type": "string"},
        "protocol": {"type": "integer"},
        "algorithms": {"type": "array", "items": {"enum": list(proto.ALGORITHMS)}},
        "prefix": {"type": "string"},
        "events": {"type": "boolean"},
        "webpush": {"type": "boolean"},
        "vapid_public_key": {"type": "string"},
    },
    "required": ["service", "protocol", "algorithms", "prefix", "events", "webpush"],
}


@cache
def document(prefix: str, long_poll_seconds: int) -> dict[str, Any]:
    types: tuple[type[msgspec.Struct], ...] = (
        models.DeviceActivate,
        models.SignedMessage,
        models.DeviceActivated,
        models.DevicePoll,
        models.PushOutcome,
        models.ErrorBody,
    )
    _, components = msgspec.json.schema_components(types, ref_template=REF)
    components["Health"], components["Info"] = HEALTH, INFO
    wait = {"type": "integer", "minimum": 0, "maximum": long_poll_seconds, "default": 0}
    routes = (
        ("get", "/healthz", "Up, and receiving the nodes' push events (ok)", None, "Health", 200),
        ("get", "/v1/info", "Protocol version and key algorithms", None, "Info", 200),
        (
            "post",
            "/v1/activate",
            "Register a device's public key with an activation code (and, where approvals "
            "need the screen lock, its WebAuthn credential)",
            "DeviceActivate",
            "DeviceActivated",
            201,
        ),
        (
            "post",
            "/v1/poll",
            "A signed poll: the push requests waiting for the device's user (?wait seconds)",
            "SignedMessage",
            "DevicePoll",
            200,
        ),
        (
            "post",
            "/v1/answer",
            "A signed answer to a push request (an approval with the screen lock's WebAuthn "
            "assertion where the request says unlock)",
            "SignedMessage",
            "PushOutcome",
            200,
        ),
    )
    paths: dict[str, dict[str, Any]] = {}
    for verb, path, summary, body, response, status in routes:
        op: dict[str, Any] = {"summary": summary, "responses": {}}
        if path == "/v1/poll":
            op["parameters"] = [{"name": "wait", "in": "query", "schema": wait}]
        if body:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": REF.format(name=body)}}},
            }
        op["responses"][str(status)] = {
            "description": "Success",
            "content": {"application/json": {"schema": {"$ref": REF.format(name=response)}}},
        }
        if body:
            for code, text in ERRORS.items():
                op["responses"][code] = {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(name="ErrorBody")}}
                    },
                }
        paths[prefix + path] = {verb: op}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OpenMFA Mobile App Web Service",
            "version": __version__,
            "x-protocol": proto.PROTOCOL,
        },
        "paths": paths,
        "components": {"schemas": components},
    }
