from __future__ import annotations

import subprocess

import pytest

from openmfa.core import hotp

KEY = b"12345678901234567890"
# RFC 4226 Appendix D: HOTP values for counters 0..9.
RFC4226 = [
    "755224",
    "287082",
    "359152",
    "969429",
    "338314",
    "254676",
    "287922",
    "162583",
    "399871",
    "520489",
]


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(RFC4226)))
def test_rfc4226_vectors(counter: int, expected: str) -> None:
    assert hotp.hotp(KEY, counter) == expected


def test_look_ahead_window_and_forward_only() -> None:
    assert hotp.verify(KEY, RFC4226[5], 0, look_ahead=10) == 6
    assert hotp.verify(KEY, RFC4226[5], 0, look_ahead=4) is None  # beyond the window
    assert hotp.verify(KEY, RFC4226[5], 6) is None  # already used: the counter moved past it


def test_wrong_shape_is_rejected() -> None:
    assert hotp.verify(KEY, "75522", 0) is None
    assert hotp.verify(KEY, "75522x", 0) is None


def test_resync_needs_two_consecutive_codes() -> None:
    assert hotp.resync(KEY, RFC4226[7], RFC4226[8], 0, window=10) == 9
    assert hotp.resync(KEY, RFC4226[8], RFC4226[7], 0, window=10) is None
    assert hotp.resync(KEY, RFC4226[7], RFC4226[8], 0, window=5) is None


@pytest.mark.parametrize("digits", [6, 8])
def test_matches_oathtool(digits: int) -> None:
    hexkey = KEY.hex()
    out = subprocess.run(
        ["oathtool", "--hotp", f"--digits={digits}", "--counter=42", "-w", "3", hexkey],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [hotp.hotp(KEY, c, digits) for c in range(42, 46)]
