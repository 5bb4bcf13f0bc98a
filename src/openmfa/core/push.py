"""The device protocol's pure parts: canonical JSON, device keys, signed messages, numbers.

A device (a phone app, or ``openmfa-authenticator``) holds a key pair it made itself — ECDSA
P-256 (what phone secure hardware holds; required) or Ed25519 (accepted) — and registered the
public key at activation. Everything it says to the server is a JSON object in the canonical
form of RFC 8785 (JCS), signed with that key:

- a poll: ``{"v": 1, "op": "poll", "device_id", "ts", "nonce"}``
- an answer: ``{"v": 1, "op": "answer", "request_id", "nonce", "decision", "number",
  "device_id", "counter", "ts"}`` where ``decision`` is ``approve``, ``deny`` or ``fraud``,
  ``number`` is what the person typed (``""`` unless approving), ``nonce`` is the request's
  server nonce, and ``counter`` is larger than any the device used before.

The server re-encodes what it parsed and requires the bytes it was sent to be exactly that
canonical form, so there is one way to write each message. Only strings, integers (|n| < 2^53)
and booleans appear; floats are refused (their JCS form is not worth the risk here).
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

PROTOCOL = 1
ALGORITHMS = ("ES256", "EdDSA")
DECISIONS = ("approve", "deny", "fraud")
MAX_MESSAGE = 2048
"""Bytes: no message of the protocol is longer."""
NONCE_BYTES = 16
"""128 bits of server nonce per request."""
_SAFE = 2**53
MAX_COUNTER = 2**31 - 1
"""The largest answer counter a device may send (a device counts one a sign-in; the node keeps
it in a 32-bit column on every database)."""


class ProtocolError(ValueError):
    """A device message that is not well formed (the text says what is wrong)."""


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    if not isinstance(text, str) or len(text) > 4096:
        raise ProtocolError("expected base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise ProtocolError("not base64url") from None


def canonical(obj: dict[str, Any]) -> bytes:
    """RFC 8785 for the objects of this protocol (string keys; str, int, bool values)."""
    for key, value in obj.items():
        if not isinstance(key, str) or not key.isascii():
            raise ProtocolError("object keys must be ASCII strings")
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            if not -_SAFE < value < _SAFE:
                raise ProtocolError(f"{key} is out of range")
            continue
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ProtocolError(f"{key} is not valid Unicode") from None
            continue
        raise ProtocolError(f"{key} must be a string, an integer or a boolean")
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def parse(raw: bytes) -> dict[str, Any]:
    """A message as sent: JSON, an object, already in canonical form."""
    if len(raw) > MAX_MESSAGE:
        raise ProtocolError(f"the message is longer than {MAX_MESSAGE} bytes")
    try:
        obj = json.loads(raw, parse_float=_no_float, parse_constant=_no_float)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("the message is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("the message is not a JSON object")
    if canonical(obj) != raw:
        raise ProtocolError("the message is not in canonical form (RFC 8785)")
    if obj.get("v") != PROTOCOL:
        raise ProtocolError(f"protocol version must be {PROTOCOL}")
    return obj


def _no_float(text: str) -> Any:
    raise ProtocolError("numbers must be integers")


# -- keys and signatures -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceKey:
    alg: str
    spki: bytes
    """SubjectPublicKeyInfo, DER (what WebCrypto's ``exportKey("spki")`` gives)."""

    @classmethod
    def load(cls, alg: str, spki: bytes) -> DeviceKey:
        """Check the key is of the kind it claims; raises ProtocolError otherwise."""
        if alg not in ALGORITHMS:
            raise ProtocolError(f"alg must be one of {', '.join(ALGORITHMS)}")
        try:
            key = serialization.load_der_public_key(spki)
        except (ValueError, TypeError):
            raise ProtocolError("public_key is not a DER SubjectPublicKeyInfo") from None
        if alg == "ES256":
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                raise ProtocolError("an ES256 key must be an ECDSA P-256 public key")
        elif not isinstance(key, ed25519.Ed25519PublicKey):
            raise ProtocolError("an EdDSA key must be an Ed25519 public key")
        return cls(alg, spki)

    def verify(self, message: bytes, signature: bytes) -> bool:
        key = serialization.load_der_public_key(self.spki)
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, message)
                return True
            assert isinstance(key, ec.EllipticCurvePublicKey)
            if len(signature) == 64:  # IEEE P1363 r||s (WebCrypto); else DER (Android, iOS)
                r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                signature = encode_dss_signature(r, s)
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
            return True
        except (InvalidSignature, ValueError):
            return False


@dataclass(frozen=True, slots=True)
class Signed:
    """A message and its signature, as a device sends them (both base64url)."""

    raw: bytes
    signature: bytes
    body: dict[str, Any]

    @classmethod
    def decode(cls, payload: str, signature: str, op: str) -> Signed:
        raw = unb64u(payload)
        body = parse(raw)
        if body.get("op") != op:
            raise ProtocolError(f"op must be {op!r}")
        if not isinstance(body.get("device_id"), str) or not isinstance(body.get("ts"), int):
            raise ProtocolError("device_id (a string) and ts (an integer) are required")
        if not isinstance(body.get("nonce"), str) or not 16 <= len(body["nonce"]) <= 128:
            raise ProtocolError("nonce must be a string of 16 to 128 characters")
        if op == "answer":
            if body.get("decision") not in DECISIONS:
                raise ProtocolError(f"decision must be one of {', '.join(DECISIONS)}")
            if not isinstance(body.get("request_id"), str):
                raise ProtocolError("request_id must be a string")
            if not isinstance(body.get("number"), str) or len(body["number"]) > 8:
                raise ProtocolError("number must be a string of at most 8 characters")
            counter = body.get("counter")
            if type(counter) is not int or not 1 <= counter <= MAX_COUNTER:
                raise ProtocolError(f"counter must be an integer from 1 to {MAX_COUNTER}")
        return cls(raw, unb64u(signature), body)

    @property
    def device_id(self) -> str:
        return str(self.body["device_id"])


def sign_message(private_key: Any, body: dict[str, Any]) -> tuple[str, str]:
    """What a device does (the reference authenticator): canonical bytes and their signature,
    both base64url. ``private_key`` is an ``ec.EllipticCurvePrivateKey`` or Ed25519 key."""
    raw = canonical(body)
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        sig = private_key.sign(raw)
    else:
        sig = private_key.sign(raw, ec.ECDSA(hashes.SHA256()))
    return b64u(raw), b64u(sig)


# -- numbers and nonces ------------------------------------------------------------------------


def new_number() -> str:
    """The two-digit number shown at sign-in and typed on the phone (10 to 99: never a leading
    zero a person might drop)."""
    return str(10 + secrets.randbelow(90))


def new_nonce() -> str:
    return b64u(secrets.token_bytes(NONCE_BYTES))


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
