"""Node-to-node requests signed with the farm key (HMAC-SHA256) — sans-IO.

Invariant owned here: a farm request is accepted only if its signature covers the method, the
path with its query, the time, a nonce and the body's hash; the time is within ``SKEW`` seconds
of ours; and the nonce was not seen before within the window (a captured request cannot be
replayed). No farm endpoint is open: there is no unsigned way in.

>>> key = bytes(32)
>>> headers = sign(key, "node-b", "GET", "/v1/farm/changes?since=3", b"", now=1000.0, nonce="ab")
>>> check = SignatureCheck(key)
>>> check.verify(headers, "GET", "/v1/farm/changes?since=3", b"", now=1001.0)
'node-b'
>>> check.verify(headers, "GET", "/v1/farm/changes?since=3", b"", now=1001.0)
Traceback (most recent call last):
...
openmfa.errors.Unauthorized: this farm request was seen before (a replay); it is refused
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from ..errors import Unauthorized

SKEW = 60.0
NODE, TIME, NONCE, SIGNATURE = "x-omfa-node", "x-omfa-time", "x-omfa-nonce", "x-omfa-signature"


def _mac(key: bytes, node: str, method: str, target: str, at: str, nonce: str, body: bytes) -> str:
    text = "\n".join((node, method.upper(), target, at, nonce, hashlib.sha256(body).hexdigest()))
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def sign(
    key: bytes,
    node: str,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers that prove ``node`` holds the farm key; ``target`` is the path with its query."""
    at = f"{time.time() if now is None else now:.3f}"
    nonce = nonce or secrets.token_hex(16)
    return {
        NODE: node,
        TIME: at,
        NONCE: nonce,
        SIGNATURE: _mac(key, node, method, target, at, nonce, body),
    }


class SignatureCheck:
    """The master's side: verifies signatures and remembers nonces for the skew window."""

    MAX_NONCES = 100_000

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._seen: dict[str, float] = {}

    def verify(
        self,
        headers: Mapping[str, str],
        method: str,
        target: str,
        body: bytes,
        *,
        now: float | None = None,
    ) -> str:
        """Return the signing node's name, or raise ``Unauthorized`` saying what was wrong."""
        now = time.time() if now is None else now
        node, at, nonce, given = (headers.get(h, "") for h in (NODE, TIME, NONCE, SIGNATURE))
        if not (node and at and nonce and given):
            raise Unauthorized("farm requests must be signed with the farm key (X-OMFA-* headers)")
        try:
            when = float(at)
        except ValueError:
            raise Unauthorized("the X-OMFA-Time header is not a number") from None
        if abs(now - when) > SKEW:
            raise Unauthorized(
                f"the farm request's time is {now - when:+.0f} s off this node's clock "
                f"(at most {SKEW:.0f} s is allowed); synchronise the clocks (NTP)"
            )
        expected = _mac(self.key, node, method, target, at, nonce, body)
        if not hmac.compare_digest(expected, given):
            raise Unauthorized("the farm request's signature is wrong (not this farm's key?)")
        if nonce in self._seen:
            raise Unauthorized("this farm request was seen before (a replay); it is refused")
        if len(self._seen) >= self.MAX_NONCES:
            self._seen = {n: t for n, t in self._seen.items() if t > now - 2 * SKEW}
        self._seen[nonce] = now
        return node
