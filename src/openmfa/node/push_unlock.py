"""Screen-lock approvals (``[mobile] require_unlock``): the node, as a WebAuthn relying party,
checks that the phone was unlocked for each approval.

Invariants owned here:
- the relying party is the mobile service as phones reach it: its id the host of ``[mobile]
  public_url``, its origin that URL's scheme, host and port (the page the app runs in);
- at activation the app registers a credential with user verification whose challenge is
  SHA-256(``openmfa-unlock:`` + the activation code as normalised), so a registration belongs
  to one code; the credential's id and public key are kept with the device (``devices.unlock``,
  data format 7);
- an approval carries an assertion of that same credential, with user verification, whose
  challenge is the push request's nonce (base64url-decoded): it belongs to one request, which
  is decided once (``push_requests``), so an assertion is never taken twice;
- anything that does not verify is refused in plain words, never a server error.

The checks are py_webauthn's (``verify_registration_response``,
``verify_authentication_response``), as for the portal's passkeys (``passkeys``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from webauthn import verify_authentication_response, verify_registration_response
from webauthn.helpers.exceptions import WebAuthnException

from ..config import Config
from ..core import push as proto
from ..errors import ConfigError, UnlockRefused

CHALLENGE_PREFIX = b"openmfa-unlock:"
UNLOCK_NEEDED = "this approval needs your phone's screen lock; approve again and unlock when asked"
ACTIVATE_AGAIN = (
    "this phone was activated before approvals needed the screen lock; activate it again"
)
_BROKEN = (
    WebAuthnException,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    OverflowError,
    RecursionError,
)
"""What py_webauthn raises for a credential that does not verify or does not parse."""


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def normalized_code(code: str) -> str:
    """An activation code as typed, the way the node keeps it: upper case, no spaces."""
    return code.strip().upper().replace(" ", "")


def registration_challenge(code: str) -> bytes:
    """The challenge of the screen-lock credential registered with activation code ``code``."""
    return hashlib.sha256(CHALLENGE_PREFIX + normalized_code(code).encode()).digest()


def origin_of(url: str) -> tuple[str, str]:
    """(origin, rp id) of the mobile service's public URL: ``https://mfa.example.org:8443``
    and ``mfa.example.org``; a default port is left out, as a browser leaves it out."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    shown = f"[{host}]" if ":" in host else host
    if port is not None and (scheme, port) not in (("https", 443), ("http", 80)):
        shown = f"{shown}:{port}"
    return f"{scheme}://{shown}", host


@dataclass(frozen=True, slots=True)
class UnlockParty:
    """The relying party of screen-lock approvals, and whether approvals need it."""

    required: bool
    origin: str
    rp_id: str

    @classmethod
    def of(cls, config: Config) -> UnlockParty:
        """Raises ConfigError where approvals need the screen lock and phones could never
        prove it: a browser takes no IP address as the relying party, and WebAuthn only on
        https (or on localhost, for a test)."""
        m = config.values["mobile"]
        url = str(m["public_url"]).rstrip("/")
        origin, rp_id = origin_of(url)
        required = bool(m.get("require_unlock", False))
        named = rp_id == "localhost" or (origin.startswith("https://") and not _is_address(rp_id))
        if required and rp_id and not named:
            raise ConfigError(
                "[mobile] require_unlock needs [mobile] public_url on https with the host name "
                "phones use (a browser proves the screen lock only to a named https site, or to "
                f"localhost); it is {url!r}"
            )
        return cls(required, origin, rp_id)

    def registered(self, credential: str, code: str) -> str:
        """The stored form (``devices.unlock``: JSON ``{"id", "key"}``, base64url) of the
        credential registered with activation code ``code``; ``UnlockRefused`` when it does
        not verify."""
        try:
            done = verify_registration_response(
                credential=credential,
                expected_challenge=registration_challenge(code),
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                require_user_verification=True,
            )
        except _BROKEN as exc:
            raise UnlockRefused(
                "the phone's screen-lock credential is refused "
                f"({type(exc).__name__}); activate again and unlock when asked"
            ) from None
        ids = {"id": proto.b64u(done.credential_id), "key": proto.b64u(done.credential_public_key)}
        return json.dumps(ids, separators=(",", ":"), sort_keys=True)

    def refusal(self, stored: str, credential: str, nonce: str) -> str | None:
        """Why the assertion ``credential`` does not unlock an approval of the request with
        ``nonce`` for a device whose screen-lock credential is ``stored``; None when it does."""
        if not stored:
            return ACTIVATE_AGAIN
        if not credential:
            return UNLOCK_NEEDED
        try:
            kept = json.loads(stored)
            raw_id = proto.unb64u(str(json.loads(credential)["rawId"]))
            if not hmac.compare_digest(raw_id, proto.unb64u(kept["id"])):
                return UNLOCK_NEEDED  # another credential (another phone's, or a new one)
            verify_authentication_response(
                credential=credential,
                expected_challenge=proto.unb64u(nonce),
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                credential_public_key=proto.unb64u(kept["key"]),
                credential_current_sign_count=0,
                require_user_verification=True,
            )
        except (*_BROKEN, proto.ProtocolError):
            return UNLOCK_NEEDED
        return None
