"""Constant-time, normalised comparison of codes and secrets (pyotp's ``strings_equal`` habit)."""

from __future__ import annotations

import hmac
import unicodedata


def normalize_code(code: str) -> str:
    """NFKC-normalise a user-typed code and drop the separators people type (spaces, dashes).

    >>> normalize_code(" 123 456 ")
    '123456'
    >>> normalize_code("\uff11\uff12\uff13-456")  # full-width digits, as some keyboards send
    '123456'
    """
    if code.isascii() and code.isdigit():
        return code  # what nearly every request carries
    code = unicodedata.normalize("NFKC", code)
    return "".join(ch for ch in code if ch not in " -\t")


def strings_equal(a: str, b: str) -> bool:
    """Compare two strings in time that does not depend on where they differ."""
    return hmac.compare_digest(a.encode(), b.encode())
