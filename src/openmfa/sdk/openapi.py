"""The OpenAPI 3.1 document of the SDK, served at ``/v1/openapi.json``.

Schemas come from the very classes that decode requests and encode answers
(``openmfa.sdk.models``), and every limit the node enforces is stated: text patterns, maximum
lengths, query parameters' ranges, and this node's ``[policy] bypass_max_seconds``. A request
the document calls valid is never refused as invalid (tests/e2e/test_fuzz.py runs schemathesis
against a live node to keep it so).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from .. import __version__
from . import models

REF = "#/components/schemas/{name}"

# (method, path, permission, summary, request body, response schema or None, success status)
ROUTES: list[tuple[str, str, str | None, str, str | None, str | None, int]] = [
    ("get", "/healthz", None, "The process is up", None, "Health", 200),
    ("get", "/readyz", None, "The node can serve (answered from memory)", None, "Health", 200),
    ("get", "/version", None, "Release, data-format and SDK versions", None, "VersionInfo", 200),
    (
        "post",
        "/v1/authenticate",
        "authenticate",
        "Check a user's code; `method: push` opens a push and needs an admin key (permission "
        "push). For portal and adapter keys an unknown, disabled or methodless user gets a "
        "wrong code's answer",
        "AuthenticateRequest",
        "DecisionView",
        200,
    ),
    ("get", "/v1/users", "users:read", "List users (?limit, ?after)", None, "UserPage", 200),
    ("post", "/v1/users", "users:write", "Create a user", "UserCreate", "UserView", 201),
    ("get", "/v1/users/{name}", "users:read", "Show a user", None, "UserView", 200),
    ("patch", "/v1/users/{name}", "users:write", "Change a user", "UserPatch", "UserView", 200),
    (
        "delete",
        "/v1/users/{name}",
        "users:write",
        "Delete a user and their methods",
        None,
        None,
        204,
    ),
    ("post", "/v1/users/{name}/unlock", "users:write", "Clear a lockout", None, "UserView", 200),
    (
        "post",
        "/v1/users/{name}/bypass",
        "bypass",
        "Grant a one-time bypass",
        "BypassRequest",
        "BypassGranted",
        200,
    ),
    (
        "get",
        "/v1/users/{name}/methods",
        "methods:read",
        "List a user's methods",
        None,
        "MethodList",
        200,
    ),
    (
        "post",
        "/v1/users/{name}/methods",
        "methods:write",
        "Enroll a method (secret shown once)",
        "MethodCreate",
        "Enrollment",
        201,
    ),
    (
        "delete",
        "/v1/users/{name}/methods/{method_id}",
        "methods:write",
        "Remove a method",
        None,
        None,
        204,
    ),
    (
        "post",
        "/v1/users/{name}/methods/{method_id}/resync",
        "methods:write",
        "Resynchronise an HOTP token with two consecutive codes",
        "ResyncRequest",
        "Resynchronised",
        200,
    ),
    (
        "get",
        "/v1/authenticate/{push_id}",
        "authenticate",
        "Where a push request stands (?wait=N holds the answer until the phone answers)",
        None,
        "PushOutcome",
        200,
    ),
    (
        "get",
        "/v1/users/{name}/devices",
        "methods:read",
        "List a user's push devices",
        None,
        "DeviceList",
        200,
    ),
    (
        "post",
        "/v1/users/{name}/devices/activation",
        "methods:write",
        "A single-use device activation code (shown once)",
        "ActivationRequest",
        "ActivationCode",
        201,
    ),
    (
        "delete",
        "/v1/users/{name}/devices/{device_id}",
        "methods:write",
        "Revoke a push device",
        None,
        None,
        204,
    ),
    (
        "post",
        "/v1/devices",
        "devices",
        "Activate a device (the mobile service passes on its code and public key)",
        "DeviceActivate",
        "DeviceActivated",
        201,
    ),
    (
        "post",
        "/v1/devices/poll",
        "devices",
        "A device's signed poll: the push requests waiting for its user",
        "SignedMessage",
        "DevicePoll",
        200,
    ),
    (
        "post",
        "/v1/push/answer",
        "devices",
        "A device's signed answer to a push request",
        "SignedMessage",
        "PushOutcome",
        200,
    ),
    (
        "get",
        "/v1/push/events",
        "devices",
        "New push requests since ?after (?boot, ?wait up to 60 s), for the mobile service",
        None,
        "PushEvents",
        200,
    ),
    (
        "post",
        "/v1/adapter/verify",
        "adapter",
        "An identity provider's REST second factor (LemonLDAP::NG): 200 with result true or "
        "false; the adapter key as a Bearer token or as HTTP Basic's password",
        "AdapterVerify",
        "AdapterResult",
        200,
    ),
    (
        "post",
        "/v1/portal/sign-in",
        "portal",
        "The User Portal's first step: the user's first factor -> a ticket",
        "PortalSignIn",
        "PortalStep",
        200,
    ),
    (
        "post",
        "/v1/portal/second-factor",
        "portal",
        "The second step: the ticket and a code -> a session token bound to the user",
        "PortalSecondFactor",
        "PortalStep",
        200,
    ),
    (
        "get",
        "/v1/portal/me",
        "portal",
        "The signed-in user and their methods (header X-OpenMFA-Session: the session token)",
        None,
        "PortalMe",
        200,
    ),
    (
        "post",
        "/v1/portal/me/totp",
        "portal",
        "Offer the signed-in user a new authenticator app's secret (a fresh sign-in needed)",
        "PortalTotpStart",
        "PortalTotpOffer",
        200,
    ),
    (
        "post",
        "/v1/portal/me/totp/confirm",
        "portal",
        "Save the offered authenticator app once the user types its code",
        "PortalTotpConfirm",
        "MethodView",
        201,
    ),
    (
        "delete",
        "/v1/portal/me/methods/{method_id}",
        "portal",
        "The signed-in user removes a method of theirs (a fresh sign-in needed)",
        None,
        None,
        204,
    ),
    (
        "post",
        "/v1/portal/me/devices/activation",
        "portal",
        "An activation code for the signed-in user's mobile app (a fresh sign-in needed)",
        "ActivationRequest",
        "ActivationCode",
        201,
    ),
    (
        "get",
        "/v1/portal/me/sign-ins",
        "portal",
        "The signed-in user's recent sign-ins, newest first (?limit, at most 100)",
        None,
        "AuditPage",
        200,
    ),
    (
        "post",
        "/v1/portal/me/backup-codes",
        "portal",
        "New backup codes for the signed-in user, shown once (a fresh sign-in needed)",
        None,
        "Enrollment",
        201,
    ),
    (
        "post",
        "/v1/portal/passkey/options",
        "portal",
        "A passkey sign-in begins (the ticket): the browser's options and a sealed challenge",
        "PasskeyOptions",
        "PasskeyChallenge",
        200,
    ),
    (
        "post",
        "/v1/portal/passkey",
        "portal",
        "The browser's passkey answer (the ticket) -> a session token bound to the user",
        "PasskeyAnswer",
        "PortalStep",
        200,
    ),
    (
        "post",
        "/v1/portal/me/passkeys/options",
        "portal",
        "The signed-in user registers a passkey: the browser's options (a fresh sign-in)",
        "PasskeyOptions",
        "PasskeyChallenge",
        200,
    ),
    (
        "post",
        "/v1/portal/me/passkeys",
        "portal",
        "Save the browser's new credential as the signed-in user's passkey",
        "PasskeyAnswer",
        "MethodView",
        201,
    ),
    (
        "put",
        "/v1/portal/me/phone",
        "portal",
        "The signed-in user's phone number, stored as E.164 (a fresh sign-in needed)",
        "PortalPhone",
        "UserView",
        200,
    ),
    (
        "put",
        "/v1/portal/me/default",
        "portal",
        'The method the signed-in user is asked for first ("" clears the choice)',
        "PortalDefault",
        "UserView",
        200,
    ),
    (
        "post",
        "/v1/portal/me/sign-out-everywhere",
        "portal",
        "End every portal session of the signed-in user, on every portal and node",
        None,
        None,
        204,
    ),
    (
        "post",
        "/v1/portal/me/sign-out",
        "portal",
        "End this portal session (and the forward-auth cookie that carries its id) everywhere",
        None,
        None,
        204,
    ),
    (
        "post",
        "/v1/portal/sessions/end",
        "portal",
        "End sessions of a person by their ids (a signing-out browser's forward-auth cookie)",
        "PortalSessionsEnd",
        None,
        204,
    ),
    (
        "get",
        "/v1/portal/sessions/ended",
        "portal",
        "The portal hosts' revocation view: sessions ended since row `after`, people locked now",
        None,
        "SessionsEnded",
        200,
    ),
    (
        "post",
        "/v1/portal/me/bypass",
        "portal",
        "A one-time bypass the signed-in user asks for, where [portal] bypass_seconds allows",
        None,
        "BypassGranted",
        201,
    ),
    (
        "get",
        "/v1/tokens",
        "methods:read",
        "The OATH token inventory (?unassigned=true, ?limit, ?after); never a seed",
        None,
        "TokenPage",
        200,
    ),
    (
        "post",
        "/v1/tokens/{serial}/assign",
        "methods:write",
        "Give an inventory token to a user (it becomes their method)",
        "TokenAssign",
        "MethodView",
        201,
    ),
    (
        "delete",
        "/v1/tokens/{serial}",
        "methods:write",
        "Remove a free token from the inventory",
        None,
        None,
        204,
    ),
    (
        "post",
        "/v1/portal/me/tokens",
        "portal",
        "The signed-in user claims a free token by its serial and the code it shows now",
        "TokenClaim",
        "MethodView",
        201,
    ),
    (
        "post",
        "/v1/components/report",
        "report",
        "A portal, mobile-service or adapter host says what it runs (its key's scope is its "
        "kind); the answer holds the farm's order for it, if any",
        "ComponentReport",
        "ComponentReply",
        200,
    ),
    (
        "get",
        "/v1/audit",
        "audit:read",
        "Audit events (?user, ?since, ?limit, ?after_id)",
        None,
        "AuditPage",
        200,
    ),
    (
        "get",
        "/v1/radius/stats",
        "audit:read",
        "RADIUS counters of this node",
        None,
        "RadiusStats",
        200,
    ),
]

SESSION = {
    "name": "X-OpenMFA-Session",
    "in": "header",
    "required": True,
    "description": "the signed-in user's session token (from /v1/portal/second-factor)",
    "schema": {"type": "string"},
}
"""Every /v1/portal/me route's header."""
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
_WAIT = {"type": "integer", "minimum": 0, "maximum": 60, "default": 0}
QUERY: dict[str, list[dict[str, Any]]] = {
    "/v1/portal/me/sign-ins": [
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
        }
    ],
    "/v1/authenticate/{push_id}": [{"name": "wait", "in": "query", "schema": _WAIT}],
    "/v1/push/events": [
        {"name": "boot", "in": "query", "schema": {"type": "string"}},
        {
            "name": "after",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0},
        },
        {"name": "wait", "in": "query", "schema": _WAIT},
    ],
    "/v1/users": [
        {"name": "limit", "in": "query", "schema": _LIMIT},
        {"name": "after", "in": "query", "schema": {"type": "string"}},
    ],
    "/v1/tokens": [
        {"name": "unassigned", "in": "query", "schema": {"type": "boolean", "default": False}},
        {"name": "limit", "in": "query", "schema": _LIMIT},
        {"name": "after", "in": "query", "schema": {"type": "string"}},
    ],
    "/v1/audit": [
        {"name": "user", "in": "query", "schema": {"type": "string"}},
        {
            "name": "since",
            "in": "query",
            "description": "seconds since the epoch, or an ISO 8601 time",
            "schema": {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]},
        },
        {"name": "limit", "in": "query", "schema": _LIMIT},
        {
            "name": "after_id",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0},
        },
    ],
}

ERRORS = {
    "400": "Malformed request (not JSON, broken header)",
    "401": "No API key, or a wrong, expired or revoked one",
    "403": "The API key's scope does not allow this call",
    "404": "No such user, method, device, push request or route",
    "409": "It exists already (or not_master: a write sent to a farm subordinate; push_closed: "
    "the push request was answered or expired)",
    "413": "Body larger than [server] max_body_bytes",
    "422": "A value has the wrong type, length or range",
    "503": "The node cannot serve now",
}


@cache
def document(bypass_max_seconds: int = 86400) -> dict[str, Any]:
    """The document for a node whose ``[policy] bypass_max_seconds`` is as given."""
    types = (*models.REQUEST_BODIES, *models.RESPONSES)
    _, components = msgspec.json.schema_components(types, ref_template=REF)
    components["BypassRequest"]["properties"]["seconds"]["maximum"] = bypass_max_seconds
    # Backup codes are generated by the node: no secret with them.
    components["MethodCreate"]["if"] = {
        "properties": {"kind": {"const": "backup-codes"}},
        "required": ["kind"],
    }
    components["MethodCreate"]["then"] = {"properties": {"secret": {"type": "null"}}}
    # A push is answered by the phone: no code with it.
    components["AuthenticateRequest"]["if"] = {
        "properties": {"method": {"const": "push"}},
        "required": ["method"],
    }
    components["AuthenticateRequest"]["then"] = {"properties": {"code": {"maxLength": 0}}}
    components["PortalSecondFactor"]["if"] = {
        "properties": {"method": {"const": "push"}},
        "required": ["method"],
    }
    components["PortalSecondFactor"]["then"] = {"properties": {"code": {"maxLength": 0}}}
    paths: dict[str, dict[str, Any]] = {}
    for verb, path, permission, summary, body, response, status in ROUTES:
        op: dict[str, Any] = {"summary": summary, "responses": {}}
        if permission:
            op["security"] = [{"apiKey": []}]
            op["description"] = f"Needs an API key whose scope allows `{permission}`."
        params: list[dict[str, Any]] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in ("name", "method_id", "device_id", "push_id", "serial")
            if "{" + p + "}" in path
        ]
        if verb == "get":
            params += QUERY.get(path, [])
        if path.startswith("/v1/portal/me"):
            params.append(SESSION)
        if params:
            op["parameters"] = params
        if body:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": REF.format(name=body)}}},
            }
        ok: dict[str, Any] = {"description": "Success"}
        if response:
            ok["content"] = {"application/json": {"schema": {"$ref": REF.format(name=response)}}}
        op["responses"][str(status)] = ok
        for code, text in ERRORS.items():
            op["responses"][code] = {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": REF.format(name="ErrorBody")}}},
            }
        paths.setdefault(path, {})[verb] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OpenMFA Web Service SDK",
            "version": __version__,
            "x-sdk-versions": list(models.SDK_VERSIONS),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "omfa_… key from `openmfa apikey create`",
                }
            },
        },
    }
