"""The OpenID Connect provider's requests (``/v1/oidc/...``), beside ``calls.Requests`` (which
the clients send the same way)."""

from __future__ import annotations

import msgspec

from .call import Call, _mine
from .models import (
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

_encode = msgspec.json.Encoder().encode


class OidcRequests:
    """The OpenID Connect provider's builders."""

    @staticmethod
    def oidc_provider() -> Call[OidcProviderInfo]:
        """The provider's discovery document and JWKS (``node.oidc_tokens``, ``oidc_keys``)."""
        return Call("GET", "/v1/oidc/provider", OidcProviderInfo)

    @staticmethod
    def oidc_check(client_id: str, redirect_uri: str) -> Call[OidcClientChecked]:
        """An authorization request's client and redirect URI, before anyone signs in."""
        body = _encode(OidcClientCheck(client_id=client_id, redirect_uri=redirect_uri))
        return Call("POST", "/v1/oidc/check", OidcClientChecked, body=body)

    @staticmethod
    def oidc_code(
        session: str, request: OidcCodeRequest, *, address: str = "", agent: str = ""
    ) -> Call[OidcCodeIssued]:
        """A one-use authorization code for the signed-in person (at the farm's master);
        ``address``: the browser's (the application's policy rule's networks match it)."""
        return _mine(
            "POST", "/v1/oidc/code", OidcCodeIssued, session, _encode(request),
            address=address, agent=agent,
        )  # fmt: skip

    @staticmethod
    def oidc_token(request: OidcTokenRequest) -> Call[OidcTokens]:
        """A code -> the ID token the node signed (at the farm's master, where codes live)."""
        return Call("POST", "/v1/oidc/token", OidcTokens, body=_encode(request), kind="write")

    @staticmethod
    def oidc_eam_start(request: OidcEamStart) -> Call[OidcEamStarted]:
        """Entra ID's request -> the person and a ticket for the second factor only."""
        body = _encode(request)
        return Call("POST", "/v1/oidc/eam/start", OidcEamStarted, body=body, kind="write")

    @staticmethod
    def oidc_eam_finish(session: str, request: str) -> Call[OidcEamAnswer]:
        """After the second factor (its session token): the ID token for Entra ID."""
        body = _encode(OidcEamFinish(request=request))
        return _mine("POST", "/v1/oidc/eam/finish", OidcEamAnswer, session, body)
