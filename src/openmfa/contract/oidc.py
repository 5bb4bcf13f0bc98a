"""The SDK's OpenID Connect bodies: what a portal host sends a node for an authorization code,
an ID token, and Microsoft Entra ID's external authentication method, and what comes back.
The portal parses the browser's and the relying party's requests into these and answers with
what the node returned: it decides nothing and signs nothing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Uri = Annotated[str, Meta(min_length=1, max_length=2000)]
Short = Annotated[str, Meta(max_length=255)]
Opaque = Annotated[str, Meta(max_length=4096)]


class OidcCodeRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """An application's authorization request, for the person whose portal session goes in
    ``X-OpenMFA-Session`` (after both factors): a one-use code for ``redirect_uri``."""

    client_id: Annotated[str, Meta(min_length=1, max_length=64)]
    redirect_uri: Uri
    code_challenge: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{43}$")]
    """PKCE (RFC 7636 §4.2): BASE64URL(SHA-256(code_verifier)), 43 characters; required of
    every client."""
    code_challenge_method: Literal["S256"] = "S256"
    scope: Annotated[str, Meta(max_length=1000)] = "openid"
    nonce: Short = ""
    max_age: Annotated[int, Meta(ge=0)] | None = None
    """Seconds: a second factor older than this is refused (``login_required``: sign in again)."""


class OidcClientCheck(msgspec.Struct, forbid_unknown_fields=True):
    """An authorization request's client and redirect URI, checked before the person is asked
    to sign in: an unknown client or an unregistered redirect URI is an error page at the
    portal, never a redirect."""

    client_id: Annotated[str, Meta(min_length=1, max_length=64)]
    redirect_uri: Uri


class OidcClientChecked(msgspec.Struct, kw_only=True):
    """The client, known and with ``redirect_uri`` registered: ``kind`` is ``app`` (codes)
    or ``entra-eam`` (Entra ID's external authentication method)."""

    client_id: str
    name: str
    kind: str
    public: bool


class OidcCodeIssued(msgspec.Struct, kw_only=True):
    code: str
    expires_at: float


class OidcTokenRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The token request (RFC 6749 §4.1.3) as the portal received it; ``client_secret`` from
    the request's Basic authorization or its body (a public client: none)."""

    code: Annotated[str, Meta(min_length=1, max_length=256)]
    client_id: Annotated[str, Meta(min_length=1, max_length=64)]
    redirect_uri: Uri
    code_verifier: Annotated[str, Meta(pattern=r"^[A-Za-z0-9._~-]{43,128}$")]
    """RFC 7636 §4.1: 43 to 128 characters of ``[A-Za-z0-9-._~]``."""
    client_secret: Annotated[str, Meta(max_length=256)] = ""


class OidcTokens(msgspec.Struct, kw_only=True):
    """The token answer's body as the portal sends it on (RFC 6749 §5.1, OpenID Connect Core
    §3.1.3.3). ``access_token`` is opaque and grants nothing (there is no userinfo endpoint:
    every claim is in the ID token)."""

    id_token: str
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the token type, not a secret
    expires_in: int
    scope: str


class OidcEamStart(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Entra ID's authorization request for its external authentication method, as POSTed
    to the portal (``response_type=id_token``, ``response_mode=form_post``)."""

    client_id: Annotated[str, Meta(min_length=1, max_length=64)]
    redirect_uri: Uri
    id_token_hint: Annotated[str, Meta(min_length=1, max_length=16384)]
    claims: Annotated[str, Meta(max_length=8192)] = ""
    """The request's ``claims`` parameter, as sent (JSON text): the ``acr`` and ``amr`` values
    Entra asks for."""
    nonce: Short = ""
    scope: Annotated[str, Meta(max_length=1000)] = "openid"
    response_type: Literal["id_token"] = "id_token"


class OidcEamStarted(msgspec.Struct, kw_only=True):
    """The person the hint names, and what the portal needs to ask them for the second factor
    only: a sign-in ``ticket`` for ``/v1/portal/second-factor`` (or a passkey), and the sealed
    ``request`` to finish with once a session token is had."""

    user: str
    display_name: str
    ticket: str
    request: str
    expires_at: float
    prefer: str = ""
    kinds: list[str] | None = None


class OidcEamFinish(msgspec.Struct, forbid_unknown_fields=True):
    """After the second factor: the sealed ``request`` of ``OidcEamStarted`` (the session
    token of that second factor in ``X-OpenMFA-Session``)."""

    request: Annotated[str, Meta(min_length=1, max_length=8192)]


class OidcEamAnswer(msgspec.Struct, kw_only=True):
    """The ID token to POST back to Entra ID at ``redirect_uri`` (with the request's
    ``state``)."""

    id_token: str
    redirect_uri: str


class OidcProviderInfo(msgspec.Struct, kw_only=True):
    """What a portal needs to publish the provider: its discovery document (OpenID Connect
    Discovery §3; the endpoints under ``issuer``) and the JWKS (RFC 7517 §5)."""

    issuer: str
    discovery: dict[str, Any]
    jwks: dict[str, Any]
