"""Single-use backup codes (the "print these and keep them in a drawer" method).

Codes are 10 random digits shown as ``12345-67890`` so that a phone keypad or a RADIUS password
field can carry them, and so they can never be mistaken for a 6- or 8-digit OATH code. Only a
keyed hash (HMAC-SHA256 under a pepper derived from the node's key file) is ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from .compare import normalize_code

CODE_DIGITS = 10


def generate(count: int) -> list[str]:
    """Make ``count`` distinct codes, formatted for people."""
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(str(secrets.randbelow(10**CODE_DIGITS)).zfill(CODE_DIGITS))
    return [f"{c[:5]}-{c[5:]}" for c in sorted(codes)]


def hash_code(pepper: bytes, code: str) -> bytes:
    """The stored form of a code. ``code`` may carry separators; they are removed first."""
    return hmac.new(pepper, normalize_code(code).encode(), hashlib.sha256).digest()


def looks_like(code: str) -> bool:
    """True when a normalised code has the shape of a backup code."""
    return len(code) == CODE_DIGITS and code.isdigit()


def match(pepper: bytes, code: str, unused: list[tuple[int, bytes]]) -> int | None:
    """Return the id of the unused code equal to ``code``; every candidate is compared.

    >>> pepper = b"p" * 32
    >>> match(pepper, "12345-67890", [(1, hash_code(pepper, "1234567890"))])
    1
    >>> match(pepper, "12345-67891", [(1, hash_code(pepper, "1234567890"))]) is None
    True
    """
    candidate = hash_code(pepper, code)
    found: int | None = None
    for code_id, stored in unused:
        if hmac.compare_digest(candidate, stored) and found is None:
            found = code_id
    return found
