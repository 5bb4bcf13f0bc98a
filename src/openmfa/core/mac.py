"""HMAC (RFC 2104) for the hot paths: a RADIUS packet's Message-Authenticator (HMAC-MD5, RFC 3579
§3.2) and a TOTP/HOTP value (HMAC-SHA-1, RFC 4226 §5.2).

Why not ``hmac.digest``: on OpenSSL 3 each call looks the MAC and the digest up in the provider
tables again, which costs about three times the hashing of a RADIUS packet. Here the two keyed
hash states (key XOR ipad, key XOR opad) are made once per key (``Keyed``) and copied per
message, on CPython's own MD5 and SHA-1 when it has them — the construction of CPython's
``hmac.HMAC`` when it is given a hash constructor, RFC 2104 §2 in three lines.

Invariant owned here: ``Keyed(key, name).digest(msg)`` and ``digest(key, msg, name)`` equal
``hmac.digest(key, msg, name)`` for every key and message (RFC 2202's vectors and random keys in
``tests/core/test_mac.py``). MD5 and SHA-1 take the same time whatever the data, so a secret
key's bytes change nothing but the result.

>>> digest(b"Jefe", b"what do ya want for nothing?", "md5").hex()  # RFC 2202 §2, test case 2
'750c783e6ab0b503eaa86e310a5db738'
>>> Keyed(b"Jefe", "sha1").digest(b"what do ya want for nothing?").hex()  # RFC 2202 §3, case 2
'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79'
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

_BLOCK = 64
"""MD5's and SHA-1's block size (RFC 2104 §2: B)."""
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _constructor(name: str) -> Callable[[bytes], Any]:
    """CPython's built-in hash (no OpenSSL provider lookup per call), else hashlib's."""
    try:
        module = __import__(f"_{name}")
        built_in: Callable[[bytes], Any] = getattr(module, name)
        return built_in
    except (ImportError, AttributeError):
        return lambda data: hashlib.new(name, data)


_HASHES = {name: _constructor(name) for name in ("md5", "sha1")}


def _pads(key: bytes, name: str) -> tuple[bytes, bytes]:
    if len(key) > _BLOCK:
        key = _HASHES[name](key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return key.translate(_IPAD), key.translate(_OPAD)


class Keyed:
    """A key made ready once: ``digest(msg)`` is HMAC-``name``(key, msg)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, name: str) -> None:
        new = _HASHES[name]
        inner, outer = _pads(key, name)
        self._inner, self._outer = new(inner), new(outer)

    def digest(self, msg: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        result: bytes = outer.digest()
        return result


CACHE_SIZE = 65536
"""Keys kept made ready (``keyed``); the lot is dropped when full."""
_CACHED: dict[str, dict[bytes, Callable[[bytes], bytes]]] = {name: {} for name in _HASHES}


def keyed(key: bytes, name: str) -> Callable[[bytes], bytes]:
    """``Keyed(key, name).digest``, made once per key and kept: a node's RADIUS secrets and the
    seeds of the users signing in (whose seeds the node keeps open in memory anyway). md5 and
    sha1 only."""
    cache = _CACHED[name]
    found = cache.get(key)
    if found is None:
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        found = cache[key] = Keyed(key, name).digest
    return found


def digest(key: bytes, msg: bytes, name: str) -> bytes:
    """HMAC-``name``(key, msg) in one go; a name other than md5 or sha1 goes to ``hmac``."""
    new = _HASHES.get(name)
    if new is None:
        return hmac.digest(key, msg, name)
    if len(key) > _BLOCK:
        key = new(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    result: bytes = new(key.translate(_OPAD) + new(key.translate(_IPAD) + msg).digest()).digest()
    return result


MD5: Callable[[bytes], Any] = _HASHES["md5"]
"""MD5 on the same built-in hash (``MD5(data).digest()``): RADIUS's keyed hashes (the Response
Authenticator, RFC 2865 §3; User-Password hiding, §5.2) are MD5 over data with the secret."""


def md5(data: bytes) -> bytes:
    """``MD5(data).digest()``."""
    result: bytes = MD5(data).digest()
    return result
