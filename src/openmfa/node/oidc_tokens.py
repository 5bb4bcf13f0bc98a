"""What an OpenMFA ID token says (OpenID Connect Core §2, §5.1), made from the node's own record
of the sign-in — never from what a portal host says.

Invariants owned here:
- ``sub`` is the same for one person at every client and on every node, and never the same
  for two people: base64url(HMAC-SHA256(data-key pepper, "openmfa oidc sub" + user id + the
  user's creation time)), 128 bits. It is a *public* subject (Core §8), so an administrator
  can correlate one person across their own applications; the creation time keeps a user id
  given again after a deletion from inheriting the old person's subject;
- ``auth_time`` is when the node issued the session token after the second factor, and
  ``amr`` (RFC 8176 §2) is what that session token recorded: ``pwd`` (the portal's first
  factor), the second factor (``otp``: a code; ``swk``: a push approved with the phone app's
  key; ``hwk``: a passkey) and ``mfa``. A session without a second factor (self-enrolment, a
  one-time bypass) gets no ID token at all (``access_denied``);
- ``email``, ``name`` and ``preferred_username`` only when the client asked for the scope
  (``email``, ``profile``) and the value is known;
- ``groups``: every group the person is in (by hand and from their directory, sorted), in an
  application's ID token whatever the scope, and omitted when they are in none. Never in the
  answer to Microsoft Entra ID's external authentication method (``node.oidc_eam``), whose
  claims are a fixed set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from ..config import Config
from ..contract import UserView
from ..errors import AccessDenied, NotFound
from ..store.database import Store

ACR = "urn:openmfa:acr:mfa"
"""The ``acr`` of an application's ID token: a first and a second factor, both checked here."""
FACTORS = ("otp", "swk", "hwk")
"""The second factors a session token can record (``node.portal.FACTOR``), as ``amr`` values."""
PATHS = {
    "authorization_endpoint": "/oidc/authorize",
    "token_endpoint": "/oidc/token",
    "jwks_uri": "/oidc/jwks",
}
"""Where the portal serves the provider's endpoints, under the issuer's URL."""


def issuer_of(config: Config) -> str:
    issuer = str(config.values["oidc"]["issuer"]).rstrip("/")
    if not issuer:
        raise NotFound("OpenID Connect is off on this node: set [oidc] issuer in server.toml")
    return issuer


def subject(store: Store, user_id: int, created_at: float) -> str:
    said = f"openmfa oidc sub\0{user_id}\0{created_at!r}".encode()
    mac = hmac.new(store.box.pepper, said, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def second_factor(factor: str) -> str:
    """The session's second factor as an ``amr`` value, or ``access_denied``."""
    if factor not in FACTORS:
        raise AccessDenied(
            "this sign-in has no second factor to vouch for (a bypass, or a first method "
            "being added): sign in again with a code, a push or a passkey"
        )
    return factor


def app_claims(
    *,
    issuer: str,
    client_id: str,
    sub: str,
    user: UserView,
    granted: dict[str, Any],
    now: float,
    lifetime: float,
) -> dict[str, Any]:
    """The claims of an application's ID token for the sign-in ``granted`` records."""
    scopes = set(str(granted.get("scope", "")).split())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client_id,
        "sub": sub,
        "iat": int(now),
        "exp": int(now + lifetime),
        "auth_time": int(granted["auth_time"]),
        "acr": ACR,
        "amr": ["pwd", second_factor(str(granted["factor"])), "mfa"],
    }
    if granted.get("nonce"):
        claims["nonce"] = granted["nonce"]
    if "profile" in scopes:
        claims["preferred_username"] = user.name
        if user.display_name:
            claims["name"] = user.display_name
    if "email" in scopes and user.email:
        claims["email"] = user.email
    if user.groups:
        claims["groups"] = list(user.groups)
    return claims


def discovery(issuer: str) -> dict[str, Any]:
    """The provider's metadata (OpenID Connect Discovery §3)."""
    return {
        "issuer": issuer,
        **{k: issuer + v for k, v in PATHS.items()},
        "response_types_supported": ["code", "id_token"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "implicit"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "scopes_supported": ["openid", "profile", "email"],
        "claims_supported": [
            "iss",
            "aud",
            "sub",
            "iat",
            "exp",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "preferred_username",
            "name",
            "email",
            "groups",
        ],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "code_challenge_methods_supported": ["S256"],
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
    }
