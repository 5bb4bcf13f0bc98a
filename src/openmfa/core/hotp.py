"""HOTP: An HMAC-Based One-Time Password Algorithm (RFC 4226).

Invariant owned here: a counter only moves forward. ``verify`` returns the counter to store
next (the matched counter + 1); a caller never stores a smaller value than it holds.

RFC 4226 Appendix D vectors (secret ``12345678901234567890``):

>>> key = b"12345678901234567890"
>>> [hotp(key, c) for c in range(10)]
['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489']
"""

from __future__ import annotations

import struct

from . import mac
from .compare import strings_equal

ALGORITHMS = {"SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}
"""Key URI algorithm names and the digest each names (``core.mac``)."""
_COUNTER = struct.Struct(">Q")


def hotp(key: bytes, counter: int, digits: int = 6, algorithm: str = "SHA1") -> str:
    """Compute the HOTP value for ``counter`` (RFC 4226 §5.3, dynamic truncation)."""
    name = ALGORITHMS[algorithm]
    message = _COUNTER.pack(counter)
    h = mac.keyed(key, name)(message) if name == "sha1" else mac.digest(key, message, name)
    offset = h[-1] & 0x0F
    binary = int.from_bytes(h[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(binary % (10**digits)).zfill(digits)


def verify(
    key: bytes,
    code: str,
    counter: int,
    *,
    look_ahead: int = 10,
    digits: int = 6,
    algorithm: str = "SHA1",
) -> int | None:
    """Check ``code`` against counters ``counter .. counter+look_ahead`` (RFC 4226 §7.2).

    Returns the next counter to store (matched + 1), or ``None``. Every candidate is computed
    and compared, so the time taken does not reveal which counter matched.

    >>> verify(b"12345678901234567890", "969429", 0)
    4
    >>> verify(b"12345678901234567890", "969429", 4) is None
    True
    """
    if len(code) != digits or not code.isdigit():
        return None
    found: int | None = None
    for c in range(counter, counter + look_ahead + 1):
        if strings_equal(hotp(key, c, digits, algorithm), code) and found is None:
            found = c + 1
    return found


def resync(
    key: bytes,
    first: str,
    second: str,
    counter: int,
    *,
    window: int = 100,
    digits: int = 6,
    algorithm: str = "SHA1",
) -> int | None:
    """Resynchronise a token that drifted beyond the look-ahead window (RFC 4226 §7.4).

    The user presses the button twice; two *consecutive* codes anywhere in
    ``counter .. counter+window`` move the counter past the second one. Returns the new counter.

    >>> resync(b"12345678901234567890", "162583", "399871", 0)
    9
    >>> resync(b"12345678901234567890", "162583", "520489", 0) is None
    True
    """
    if len(first) != digits or len(second) != digits:
        return None
    for c in range(counter, counter + window + 1):
        if strings_equal(hotp(key, c, digits, algorithm), first) and strings_equal(
            hotp(key, c + 1, digits, algorithm), second
        ):
            return c + 2
    return None
