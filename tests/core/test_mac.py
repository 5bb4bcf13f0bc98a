"""core.mac against RFC 2202's HMAC-MD5 and HMAC-SHA-1 test cases and against the standard
library's hmac for random keys (shorter than, as long as and longer than a block) and messages."""

from __future__ import annotations

import hmac
import os

import pytest

from openmfa.core import mac

# RFC 2202 §2 (HMAC-MD5) and §3 (HMAC-SHA-1): (key, data, md5, sha1).
RFC2202 = [
    (
        b"\x0b" * 16,
        b"Hi There",
        "9294727a3638bb1c13f48ef8158bfc9d",
        None,
    ),
    (
        b"\x0b" * 20,
        b"Hi There",
        None,
        "b617318655057264e28bc0b6fb378c8ef146be00",
    ),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "750c783e6ab0b503eaa86e310a5db738",
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
    ),
    (
        b"\xaa" * 16,
        b"\xdd" * 50,
        "56be34521d144c88dbb8c733f0e8b3f6",
        None,
    ),
    (
        b"\xaa" * 80,  # longer than a block: the key is hashed first (RFC 2104 §2)
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
        "aa4ae5e15272d00e95705637ce8a3b55ed402112",
    ),
    (
        b"\xaa" * 80,
        b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
        "6f630fad67cda0ee1fb1f562db3aa53e",
        "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
    ),
]


@pytest.mark.parametrize(("key", "data", "md5", "sha1"), RFC2202)
def test_rfc2202_vectors(key: bytes, data: bytes, md5: str | None, sha1: str | None) -> None:
    for name, expected in (("md5", md5), ("sha1", sha1)):
        if expected is None:
            continue
        assert mac.digest(key, data, name).hex() == expected
        assert mac.Keyed(key, name).digest(data).hex() == expected


@pytest.mark.parametrize("name", ["md5", "sha1"])
@pytest.mark.parametrize("key_length", [0, 1, 16, 20, 63, 64, 65, 200])
def test_equals_the_standard_library(name: str, key_length: int) -> None:
    key = os.urandom(key_length)
    keyed = mac.Keyed(key, name)
    for length in (0, 1, 20, 55, 56, 64, 65, 4096):
        data = os.urandom(length)
        expected = hmac.digest(key, data, name)
        assert mac.digest(key, data, name) == expected
        assert keyed.digest(data) == expected
    assert keyed.digest(b"x") == keyed.digest(b"x"), "a keyed state is not used up"


def test_other_digests_go_to_the_standard_library() -> None:
    assert mac.digest(b"k", b"m", "sha256") == hmac.digest(b"k", b"m", "sha256")


def test_md5() -> None:
    assert mac.md5(b"").hex() == "d41d8cd98f00b204e9800998ecf8427e"  # RFC 1321 A.5
    assert mac.md5(b"abc").hex() == "900150983cd24fb0d6963f7d28e17f72"
