"""The OpenAPI 3.1 document of the SDK, served at ``/v1/openapi.json``.

Schemas come from the very classes that decode requests and encode responses (msgspec), so
the document and the behaviour cannot drift apart.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from .. import __version__
from ..node.views import ApiKeyView, AuditView, DecisionView, Enrollment, MethodView, UserView
from . import schemas

REF = "#/components/schemas/{name}"

# (method, path, permission, summary, request body, response schema or None, success status)
ROUTES: list[tuple[str, str, str | None, str, str | None, str | None, int]] = [
    ("get", "/healthz", None, "The process is up", None, None, 200),
    ("get", "/readyz", None, "The data file is open and migrated", None, None, 200),
    ("get", "/version", None, "Release and data-format versions", None, None, 200),
    (
        "post",
        "/v1/authenticate",
        "authenticate",
        "Check a user's code",
        "AuthenticateRequest",
        "DecisionView",
        200,
    ),
    ("get", "/v1/users", "users:read", "List users (?limit, ?after)", None, None, 200),
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
        None,
        200,
    ),
    ("get", "/v1/users/{name}/methods", "methods:read", "List a user's methods", None, None, 200),
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
        None,
        200,
    ),
    (
        "get",
        "/v1/audit",
        "audit:read",
        "Audit events (?user, ?since, ?limit, ?after_id)",
        None,
        None,
        200,
    ),
]

ERRORS = {
    "400": "Malformed request (not JSON, broken header)",
    "401": "No API key, or a wrong, expired or revoked one",
    "403": "The API key's scope does not allow this call",
    "404": "No such user, method or route",
    "409": "It exists already",
    "413": "Body larger than [server] max_body_bytes",
    "422": "A value has the wrong type, length or range",
    "503": "The data file is not usable",
}


@cache
def document() -> dict[str, Any]:
    types = (
        *schemas.REQUEST_BODIES,
        schemas.ErrorBody,
        UserView,
        MethodView,
        Enrollment,
        ApiKeyView,
        AuditView,
        DecisionView,
    )
    _, components = msgspec.json.schema_components(types, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for verb, path, permission, summary, body, response, status in ROUTES:
        op: dict[str, Any] = {"summary": summary, "responses": {}}
        if permission:
            op["security"] = [{"apiKey": []}]
            op["description"] = f"Needs an API key whose scope allows `{permission}`."
        params = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in ("name", "method_id")
            if "{" + p + "}" in path
        ]
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
        "info": {"title": "OpenMFA Web Service SDK", "version": __version__},
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
