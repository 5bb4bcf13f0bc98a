"""The OpenAPI 3.1 document of the SDK, served at ``/v1/openapi.json``.

Its paths come from the route table the app is made from (``sdk.routes.TABLE``), its schemas
from the very classes that decode requests and encode answers (``openmfa.sdk.models``), and
every limit the node enforces is stated: text patterns, maximum lengths, query parameters'
ranges, and this node's ``[policy] bypass_max_seconds``. A request the document calls valid is
never refused as invalid (tests/e2e/test_fuzz.py runs schemathesis against a live node to keep
it so).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import msgspec

from .. import __version__
from . import models
from .headers import (
    ADDRESS_HEADER,
    AGENT_HEADER,
    FOR_HEADER,
    FOR_RE,
    OPERATOR_HEADER,
    REMEMBERED_HEADER,
    REMEMBERED_RE,
)
from .routes import TABLE

REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
"""A path parameter's name in a route's path (``{name}``, ``{name:path}``)."""

PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "group": {
        "type": "string",
        "pattern": r"^\w(?:[\w .&()'+@#-]{0,40}\w)?$",
        "description": "a group's name; the node takes 1 to 128 printable characters without "
        "'/' or ',' (this pattern is a narrower form: 42 characters stay 128 or fewer after "
        "Unicode normalisation, which may triple a character)",
    },
}
"""Path parameters whose form the node checks (others are names looked up: 404 when unknown)."""

ROUTES: list[tuple[str, str, str | None, str, str | None, str | None, int]] = [
    (
        d.method.lower(),
        d.path,
        d.permission,
        d.summary,
        d.request.__name__ if d.request else None,
        d.answer.__name__ if d.answer else None,
        d.status,
    )
    for d in TABLE
    if d.documented
]
"""The documented routes of the table (``sdk.routes.TABLE``) as (verb, path, permission,
summary, request body's schema, answer's schema or None, success status)."""

SESSION = {
    "name": "X-OpenMFA-Session",
    "in": "header",
    "required": True,
    "description": "the signed-in user's session token (from /v1/portal/second-factor)",
    "schema": {"type": "string"},
}
"""Every /v1/portal/me route's header."""
ORIGIN = [
    {
        "name": ADDRESS_HEADER,
        "in": "header",
        "required": False,
        "description": "the browser's address (kept, sealed, with the sign-in's audit rows)",
        "schema": {"type": "string", "maxLength": 64},
    },
    {
        "name": AGENT_HEADER,
        "in": "header",
        "required": False,
        "description": "the browser's user agent (the node keeps only the browser's and "
        "system's names)",
        "schema": {"type": "string", "maxLength": 512},
    },
]
"""The portal's sign-in routes' headers saying where the browser is."""
PURPOSE = {
    "name": FOR_HEADER,
    "in": "header",
    "required": False,
    "description": "what the sign-in is for, as policy rules name it: portal (absent), "
    "forward-auth, or 'oidc CLIENT-NAME'",
    "schema": {"type": "string", "pattern": FOR_RE},
}
"""The first sign-in step's header (``node.portal_policy``)."""
REMEMBERED = {
    "name": REMEMBERED_HEADER,
    "in": "header",
    "required": False,
    "description": "the token of the browser's remember cookie (a remembered browser's sign-in "
    "needs no second factor where the policy rule allows it)",
    "schema": {"type": "string", "pattern": REMEMBERED_RE},
}
"""The first sign-in step's other header (``node.remembered``)."""
SIGN_IN_PATHS = ("/v1/portal/sign-in", "/v1/portal/second-factor", "/v1/portal/passkey")
CHANGES = {
    ("post", "/v1/portal/me/totp/confirm"),
    ("delete", "/v1/portal/me/methods/{method_id}"),
    ("post", "/v1/portal/me/devices/activation"),
    ("post", "/v1/portal/me/backup-codes"),
    ("post", "/v1/portal/me/passkeys"),
    ("post", "/v1/portal/me/bypass"),
    ("post", "/v1/portal/me/password"),
}
"""The signed-in user's changes that are noticed (``node.notify``): ORIGIN goes with them too,
and the notice says it (and with an application's code: its policy rule's networks match it)."""
ERRORS = {
    "400": "Malformed request (not JSON, broken header)",
    "401": "No API key, or a wrong, expired or revoked one",
    "403": "The API key's scope does not allow this call",
    "404": "No such user, method, device, push request or route",
    "409": "It exists already (or not_master: a write sent to a farm subordinate; push_closed: "
    "the push request was answered or expired; unlock_required: a device's activation without "
    "the screen-lock credential the node requires, its code still good)",
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
    for d in TABLE:
        if not d.documented:
            continue
        verb, path, permission, summary = d.method.lower(), d.path, d.permission, d.summary
        body = d.request.__name__ if d.request else None
        response = d.answer.__name__ if d.answer else None
        status = d.status
        op: dict[str, Any] = {"summary": summary, "responses": {}}
        if permission:
            op["security"] = [{"apiKey": []}]
            op["description"] = f"Needs an API key whose scope allows `{permission}`."
            if permission != "console":  # an administration console's operator (node.roles)
                op["description"] += (
                    f" Or a `console` key with an operator's token in `{OPERATOR_HEADER}` "
                    "whose role allows it (admin, helpdesk, auditor)."
                )
        params: list[dict[str, Any]] = [  # every {name} of the path (a route's own names)
            {
                "name": p,
                "in": "path",
                "required": True,
                "schema": PATH_SCHEMAS.get(p, {"type": "string"}),
            }
            for p in _PATH_PARAM.findall(path)
        ]
        params += d.query
        if path.startswith("/v1/portal/me") or path in ("/v1/oidc/code", "/v1/oidc/eam/finish"):
            params.append(SESSION)
        if path in SIGN_IN_PATHS or (verb, path) in CHANGES or path == "/v1/oidc/code":
            params += ORIGIN
        if path == "/v1/portal/sign-in":
            params += [PURPOSE, REMEMBERED]
        if (verb, path) == ("get", "/v1/portal/me"):  # does the session stand for a purpose?
            params += [PURPOSE, ORIGIN[0]]
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
