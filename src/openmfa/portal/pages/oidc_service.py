"""The OpenID Connect routes a relying party's server calls, not a person's browser: the
discovery document and the JWKS (from the node's ``/v1/oidc/provider``, kept here for a minute
and cacheable as long), and the token endpoint (RFC 6749 §3.2, OpenID Connect Core §3.1.3),
which hands the request to the node and its answer back. No session, no CSRF token: these
are machine-to-machine. Every refusal is RFC 6749 §5.2 JSON, never a 5xx for any input."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Any
from urllib.parse import unquote

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...errors import (
    InvalidClient,
    InvalidInput,
    NotFound,
    OAuthRefused,
    OpenMfaError,
    Unavailable,
)
from ...sdk.models import OidcProviderInfo, OidcTokenRequest
from ..limits import read_form_body
from ..runner import Portal

log = logging.getLogger("openmfa.portal")
KEEP_SECONDS = 60.0
"""How long the portal keeps the node's metadata and keys (and lets others cache them)."""
KEEP_AT_MOST = 3600.0
"""How long the last ones read are served while the node fails."""
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def provider(portal: Portal) -> OidcProviderInfo:
    """The node's metadata and keys, read at most once a minute; when the node fails in any
    way (unreachable, an error, no keys), the last ones read (keys are published days ahead,
    so an hour-old copy is still right). Only ``NotFound`` (OpenID Connect is off) ends them."""
    now = time.monotonic()
    kept = portal.provider
    if kept is not None and now - kept[0] < KEEP_SECONDS:
        info: OidcProviderInfo = kept[1]
        return info
    last: OidcProviderInfo | None = (
        kept[1] if kept is not None and now - kept[0] < KEEP_AT_MOST else None
    )
    try:
        info = await portal.sdk.oidc_provider()
    except NotFound:
        raise
    except OpenMfaError:
        if last is not None:
            return last
        raise
    if not info.jwks.get("keys"):  # no key yet (a first one comes with the first client)
        return last or info
    portal.provider = (now, info)
    return info


def _published(info: OidcProviderInfo, body: dict[str, Any]) -> Response:
    # Keys the portal has not got (none yet) are not to be kept by anyone either.
    cache = f"public, max-age={int(KEEP_SECONDS)}" if info.jwks.get("keys") else "no-store"
    return JSONResponse(
        body,
        headers={
            "Cache-Control": cache,
            "Access-Control-Allow-Origin": "*",  # public metadata, read by browser apps too
        },
    )


def _unpublished(e: OpenMfaError) -> Response:
    if isinstance(e, NotFound):
        log.info("the node gave no OpenID Connect metadata: %s", e)
        return JSONResponse({"error": "not_found", "error_description": str(e)}, 404)
    log.warning("no node gave the OpenID Connect metadata: %s", e.code)
    return JSONResponse({"error": "temporarily_unavailable"}, 503, headers=NO_STORE)


async def discovery(portal: Portal, request: Request) -> Response:
    """``/.well-known/openid-configuration`` (OpenID Connect Discovery §4)."""
    try:
        info = await provider(portal)
    except OpenMfaError as e:
        return _unpublished(e)
    return _published(info, info.discovery)


async def jwks(portal: Portal, request: Request) -> Response:
    """``/oidc/jwks``: the node's published keys (RFC 7517 §5)."""
    try:
        info = await provider(portal)
    except OpenMfaError as e:
        return _unpublished(e)
    return _published(info, info.jwks)


def _error(code: str, description: str, status: int = 400, basic: bool = False) -> Response:
    headers = dict(NO_STORE)
    if basic and status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="openmfa", error="invalid_client"'
    return JSONResponse({"error": code, "error_description": description}, status, headers=headers)


def _basic(header: str) -> tuple[str, str] | None:
    """client_secret_basic (RFC 6749 §2.3.1): both parts form-encoded, then Base64."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    user, sep, secret = text.partition(":")
    if not sep:
        return ("", "")
    return unquote(user.replace("+", " ")), unquote(secret.replace("+", " "))


async def token(portal: Portal, request: Request) -> Response:
    """``POST /oidc/token``: client_secret_basic, client_secret_post, or a public client with
    PKCE alone; the node checks the client, the code (once), the redirect URI and the
    verifier, and signs."""
    wrong = await read_form_body(request)
    if wrong == "large":
        return _error("invalid_request", "the request is too large", 413)
    if wrong:
        return _error("invalid_request", "the request could not be read")
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _error("invalid_request", "send the request form-encoded (RFC 6749 §4.1.3)")
    try:
        form = await request.form(max_files=0, max_fields=20)
    except Exception:
        return _error("invalid_request", "the request could not be read")
    fields: dict[str, str] = {}
    for name in (
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "client_id",
        "client_secret",
    ):
        values = form.getlist(name)
        if len(values) > 1 or any(not isinstance(v, str) for v in values):
            return _error("invalid_request", f"{name} must be given once, as text")
        fields[name] = str(values[0]) if values else ""
    auth = request.headers.get("authorization", "")
    basic = _basic(auth) if auth else None
    if auth and (basic is None or not basic[0]):
        return _error("invalid_client", "send client_id:client_secret with Basic", 401, True)
    if fields["grant_type"] != "authorization_code":
        code = "unsupported_grant_type" if fields["grant_type"] else "invalid_request"
        return _error(code, "grant_type must be authorization_code")
    client_id, secret = fields["client_id"], fields["client_secret"]
    if basic is not None:
        if secret or (client_id and client_id != basic[0]):
            return _error("invalid_request", "use one way of client authentication only")
        client_id, secret = basic
    missing = [n for n in ("code", "redirect_uri", "code_verifier") if not fields[n]]
    if not client_id:
        missing.insert(0, "client_id")
    if missing:
        return _error("invalid_request", "missing: " + ", ".join(missing))
    try:
        ask = msgspec.convert(
            {
                "code": fields["code"],
                "client_id": client_id,
                "redirect_uri": fields["redirect_uri"],
                "code_verifier": fields["code_verifier"],
                "client_secret": secret,
            },
            OidcTokenRequest,
        )
    except msgspec.ValidationError as e:
        return _error("invalid_request", str(e))
    try:
        answer = await portal.sdk.oidc_token(ask)
    except InvalidClient as e:
        return _error("invalid_client", str(e), 401, basic is not None)
    except OAuthRefused as e:
        return _error(e.code, str(e), 400)
    except InvalidInput as e:
        return _error("invalid_request", str(e))
    except Unavailable:
        log.warning("no node answered a token request")
        return _error("temporarily_unavailable", "try again in a moment", 503)
    except OpenMfaError as e:
        log.info("the node refused a token request: %s (%s)", e.code, e)
        return _error("invalid_request", str(e))
    body = msgspec.to_builtins(answer)
    return JSONResponse(body, headers=NO_STORE)
