"""TOTP: Time-Based One-Time Password Algorithm (RFC 6238).

Invariant owned here: replay protection is part of the model. ``verify`` is told the last step
accepted for this method and only a *later* step can pass (django-otp's ``last_t + 1``), so a code
is accepted at most once and a code older than one already accepted never is.

RFC 6238 Appendix B vectors (8 digits, 30 s steps):

>>> seed20 = b"12345678901234567890"
>>> seed32 = b"12345678901234567890123456789012"
>>> seed64 = b"1234567890123456789012345678901234567890123456789012345678901234"
>>> totp(seed20, 59, digits=8), totp(seed32, 59, digits=8, algorithm="SHA256")
('94287082', '46119246')
>>> totp(seed64, 59, digits=8, algorithm="SHA512")
'90693936'
>>> totp(seed20, 20000000000, digits=8)
'65353130'
"""

from __future__ import annotations

import hmac

import msgspec

from .hotp import hotp


def step_at(now: float, period: int = 30, t0: int = 0) -> int:
    """The time step ``T = floor((now - T0) / X)`` of RFC 6238 §4.2."""
    return int((now - t0) // period)


def totp(
    key: bytes, now: float, *, digits: int = 6, period: int = 30, algorithm: str = "SHA1"
) -> str:
    """The TOTP value at time ``now`` (seconds since the Unix epoch)."""
    return hotp(key, step_at(now, period), digits, algorithm)


class TotpMatch(msgspec.Struct, frozen=True):
    """Immutable; a ``msgspec.Struct`` because one is made per attempt (``core.verification``)."""

    step: int
    """The time step the code belongs to; store it as the method's last accepted step."""
    drift: int
    """``step`` minus the server's current step: how far the device's clock is off, in steps."""
    replayed: bool
    """True when the step is not after the last accepted one: the code must be refused."""


def verify(
    key: bytes,
    code: str,
    now: float,
    *,
    last_step: int,
    drift_steps: int = 1,
    digits: int = 6,
    period: int = 30,
    algorithm: str = "SHA1",
) -> TotpMatch | None:
    """Find the step in ``current ± drift_steps`` whose code equals ``code`` (RFC 6238 §5.2).

    A match at or before ``last_step`` comes back with ``replayed=True``; a fresh match is
    preferred over a replayed one. The current step is tried first and a fresh match ends the
    search (the answer says "accepted" anyway, so the time saved tells nothing more); a wrong
    code is computed and compared against every candidate step.

    >>> key = b"12345678901234567890"
    >>> verify(key, "287082", 59, last_step=-1, digits=6)
    TotpMatch(step=1, drift=0, replayed=False)
    >>> verify(key, "287082", 59, last_step=1).replayed  # the same code again
    True
    >>> verify(key, "000000", 59, last_step=-1) is None
    True
    """
    if len(code) != digits or not code.isdigit() or not code.isascii():
        return None  # (non-ASCII digits never equal a computed code)
    current = int(now // period)  # step_at(now, period), RFC 6238 §4.2 with T0 = 0
    replayed: TotpMatch | None = None
    steps = (current, current - 1, current + 1) if drift_steps == 1 and current > 0 else None
    for step in steps or _candidates(current, drift_steps):
        if hmac.compare_digest(hotp(key, step, digits, algorithm), code):  # ASCII: constant time
            if step > last_step:
                return TotpMatch(step, step - current, replayed=False)
            replayed = replayed or TotpMatch(step, step - current, replayed=True)
    return replayed


def _candidates(current: int, drift_steps: int) -> list[int]:
    """``current``, then outwards: current-1, current+1, current-2, ... (never below 0).

    >>> _candidates(10, 2)
    [10, 9, 11, 8, 12]
    """
    out = [current]
    for d in range(1, drift_steps + 1):
        out += [s for s in (current - d, current + d) if s >= 0]
    return out
