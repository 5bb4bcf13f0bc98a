from __future__ import annotations

import subprocess

import pytest

from openmfa.core import totp

SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
# RFC 6238 Appendix B: (time, TOTP, mode), 8 digits, X = 30.
RFC6238 = [
    (59, "94287082", "SHA1"),
    (59, "46119246", "SHA256"),
    (59, "90693936", "SHA512"),
    (1111111109, "07081804", "SHA1"),
    (1111111109, "68084774", "SHA256"),
    (1111111109, "25091201", "SHA512"),
    (1111111111, "14050471", "SHA1"),
    (1111111111, "67062674", "SHA256"),
    (1111111111, "99943326", "SHA512"),
    (1234567890, "89005924", "SHA1"),
    (1234567890, "91819424", "SHA256"),
    (1234567890, "93441116", "SHA512"),
    (2000000000, "69279037", "SHA1"),
    (2000000000, "90698825", "SHA256"),
    (2000000000, "38618901", "SHA512"),
    (20000000000, "65353130", "SHA1"),
    (20000000000, "77737706", "SHA256"),
    (20000000000, "47863826", "SHA512"),
]


@pytest.mark.parametrize(("now", "expected", "algorithm"), RFC6238)
def test_rfc6238_vectors(now: int, expected: str, algorithm: str) -> None:
    assert totp.totp(SEEDS[algorithm], now, digits=8, algorithm=algorithm) == expected
    match = totp.verify(
        SEEDS[algorithm], expected, now, last_step=-1, digits=8, algorithm=algorithm
    )
    assert match is not None and match.step == now // 30 and not match.replayed


def test_drift_window() -> None:
    key = SEEDS["SHA1"]
    now = 1_000_000.0
    early = totp.totp(key, now - 30)
    late = totp.totp(key, now + 30)
    far = totp.totp(key, now + 60)
    assert totp.verify(key, early, now, last_step=-1, drift_steps=1).drift == -1  # type: ignore[union-attr]
    assert totp.verify(key, late, now, last_step=-1, drift_steps=1).drift == 1  # type: ignore[union-attr]
    assert totp.verify(key, far, now, last_step=-1, drift_steps=1) is None
    assert totp.verify(key, late, now, last_step=-1, drift_steps=0) is None


def test_replay_only_later_steps_pass() -> None:
    key = SEEDS["SHA1"]
    now = 1_000_000.0
    code = totp.totp(key, now)
    first = totp.verify(key, code, now, last_step=-1)
    assert first is not None and not first.replayed
    again = totp.verify(key, code, now, last_step=first.step)
    assert again is not None and again.replayed
    earlier = totp.totp(key, now - 30)
    older = totp.verify(key, earlier, now, last_step=first.step)
    assert older is not None and older.replayed  # older than an accepted step: refused too


@pytest.mark.parametrize("algorithm", ["SHA1", "SHA256", "SHA512"])
@pytest.mark.parametrize(("digits", "period"), [(6, 30), (8, 60)])
def test_matches_oathtool(algorithm: str, digits: int, period: int) -> None:
    key = SEEDS[algorithm]
    now = 1_700_000_000
    stamp = "2023-11-14 22:13:20 UTC"  # == now
    out = subprocess.run(
        [
            "oathtool",
            "--totp=" + algorithm.lower(),
            f"--digits={digits}",
            f"--time-step-size={period}s",
            "--now",
            stamp,
            key.hex(),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == totp.totp(key, now, digits=digits, period=period, algorithm=algorithm)
