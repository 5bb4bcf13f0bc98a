"""The OATH hardware-token inventory (imported by ``openmfa token import`` or ``POST
/v1/tokens/import``): list, assign to a user, remove. A seed never leaves.
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request
from starlette.responses import Response

from ...errors import InvalidInput
from ...node.apikeys import ApiClient
from ...node.tokens import file_secret, guess_format, read_file
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
from ..models import TOKEN_FILE_MAX, MethodView, TokenAssign, TokenImport, TokenImported, TokenPage
from ..table import LIMIT, Declared, query_bool, query_str

IMPORT_LIMIT = (TOKEN_FILE_MAX + 2) // 3 * 4 + 4096
"""A token file's request: the file in base64, and the rest of the body."""


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


async def token_import(request: Request) -> Response:
    node = _node(request)
    client = await _authorize(request, "tokens:import")
    b = await _body(request, TokenImport, IMPORT_LIMIT)
    try:
        raw = base64.b64decode(b.file, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("file must be the token file's bytes in base64") from None
    if not raw:
        raise InvalidInput("the file is empty")
    fmt = b.format or guess_format(b.file_name, raw)

    def run(c: object) -> TokenImported:
        records = read_file(raw, fmt, file_secret(raw, fmt, b.password))
        report = node.tokens.import_records(
            records, assign_by=b.assign_by, actor=_actor(request, client)
        )
        return TokenImported(
            records=len(records),
            added=report.added,
            assigned=report.assigned,
            duplicates=report.duplicates,
            unmatched=report.unmatched,
        )

    return json_response(await _run(client, run))


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
        "/v1/tokens/import",
        "tokens:import",
        "Import a token file (PSKC, CSV, privacyIDEA's export; base64): all of it or nothing",
        TokenImport,
        TokenImported,
        200,
        token_import,
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
