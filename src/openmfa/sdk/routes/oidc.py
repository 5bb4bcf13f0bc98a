"""OpenID Connect for the portal hosts (``portal`` keys): the provider's metadata and keys, an
authorization code for the signed-in person, the ID token for a code, and Microsoft Entra ID's
external authentication method. The node decides and signs (``node.oidc_codes``,
``node.oidc_eam``); a portal host only parses the browser's and relying party's requests into
these calls and answers with what comes back.
"""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ...errors import Unauthorized
from ...node.apikeys import ApiClient
from ...node.portal import EAM, SESSION, Grant
from ..http import _authorize, _body, _node, _origin, json_response
from ..models import (
    OidcClientCheck,
    OidcClientChecked,
    OidcCodeIssued,
    OidcCodeRequest,
    OidcEamAnswer,
    OidcEamFinish,
    OidcEamStart,
    OidcEamStarted,
    OidcProviderInfo,
    OidcTokenRequest,
    OidcTokens,
)
from ..table import Declared
from .portal_me import SESSION_HEADER, _session


async def _eam_session(request: Request) -> tuple[ApiClient, Grant]:
    """The portal key, and the session of a sign-in Entra ID started (``portal.VIA``): the
    only session ``/v1/oidc/eam/finish`` takes, and one that nothing else takes (as
    ``portal_me._session`` checks every other)."""
    node = _node(request)
    client = await _authorize(request, "portal")
    now = time.time()
    token = request.headers.get(SESSION_HEADER, "")
    grant = node.portal.check(token, SESSION, client.name, now, via=EAM)
    if grant.issued_at <= await run_in_threadpool(node.accounts.sessions_after, grant.user):
        raise Unauthorized("the session ended (signed out everywhere); sign in again")
    if await run_in_threadpool(
        node.session_ends.ended, grant.user, grant.session_id, grant.issued_at, now
    ):
        raise Unauthorized("the session ended (signed out, or the account changed); sign in again")
    return client, grant


async def oidc_provider(request: Request) -> Response:
    """The discovery document and the JWKS a portal publishes (cacheable for minutes)."""
    node = _node(request)
    await _authorize(request, "portal")
    return json_response(await run_in_threadpool(node.oidc_codes.provider))


async def oidc_check(request: Request) -> Response:
    """An authorization request's client and redirect URI, checked before the person is asked
    to sign in (at any node: clients are replicated data)."""
    node = _node(request)
    client = await _authorize(request, "portal")
    b = await _body(request, OidcClientCheck, node.max_body)
    rid = request.state.request_id
    return json_response(await run_in_threadpool(node.oidc_codes.check, b, client.name, rid))


async def oidc_code(request: Request) -> Response:
    """An application's authorization request for the signed-in person (``X-OpenMFA-Session``):
    a one-use code, at the farm's master. The browser's address (``X-OpenMFA-Client-Address``)
    is what the application's policy rule's networks match."""
    node = _node(request)
    client, grant = await _session(request)
    address = _origin(request).address  # where the browser is, as on its sign-in calls
    b = await _body(request, OidcCodeRequest, node.max_body)
    rid = request.state.request_id
    issued = await run_in_threadpool(node.oidc_codes.issue, grant, b, client.name, rid, address)
    return json_response(issued)


async def oidc_token(request: Request) -> Response:
    """The token request: a code (once, PKCE, the client's secret) -> the signed ID token."""
    node = _node(request)
    client = await _authorize(request, "portal")
    b = await _body(request, OidcTokenRequest, node.max_body)
    rid = request.state.request_id
    return json_response(await run_in_threadpool(node.oidc_codes.redeem, b, client.name, rid))


async def oidc_eam_start(request: Request) -> Response:
    """Entra ID's request (its signed hint checked): the person, and a ticket for the second
    factor only."""
    node = _node(request)
    client = await _authorize(request, "portal")
    b = await _body(request, OidcEamStart, node.max_body)
    rid = request.state.request_id
    return json_response(await run_in_threadpool(node.oidc_eam.start, b, client.name, rid))


async def oidc_eam_finish(request: Request) -> Response:
    """After the second factor (its session token): the ID token to POST back to Entra ID."""
    node = _node(request)
    client, grant = await _eam_session(request)
    b = await _body(request, OidcEamFinish, node.max_body)
    rid = request.state.request_id
    answer = await run_in_threadpool(node.oidc_eam.finish, grant, b.request, client.name, rid)
    return json_response(answer)


ROUTES: list[Declared] = [
    Declared(
        "GET",
        "/v1/oidc/provider",
        "portal",
        "The OpenID Connect provider's discovery document and JWKS, for a portal to publish",
        None,
        OidcProviderInfo,
        200,
        oidc_provider,
    ),
    Declared(
        "POST",
        "/v1/oidc/check",
        "portal",
        "An authorization request's client and redirect URI, checked before a sign-in",
        OidcClientCheck,
        OidcClientChecked,
        200,
        oidc_check,
    ),
    Declared(
        "POST",
        "/v1/oidc/code",
        "portal",
        "An authorization code (PKCE S256) for the signed-in person (X-OpenMFA-Session)",
        OidcCodeRequest,
        OidcCodeIssued,
        200,
        oidc_code,
    ),
    Declared(
        "POST",
        "/v1/oidc/token",
        "portal",
        "A code, its client and PKCE verifier -> the ID token the node signed (once)",
        OidcTokenRequest,
        OidcTokens,
        200,
        oidc_token,
    ),
    Declared(
        "POST",
        "/v1/oidc/eam/start",
        "portal",
        "Entra ID's external authentication request -> the person and a second-factor ticket",
        OidcEamStart,
        OidcEamStarted,
        200,
        oidc_eam_start,
    ),
    Declared(
        "POST",
        "/v1/oidc/eam/finish",
        "portal",
        "After the second factor (X-OpenMFA-Session): the ID token to POST back to Entra ID",
        OidcEamFinish,
        OidcEamAnswer,
        200,
        oidc_eam_finish,
    ),
]
"""This group's routes, in the order the OpenAPI document lists them."""
