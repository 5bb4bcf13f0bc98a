"""Lockout after repeated failures, and the one-time bypass.

Invariant owned here: a lock is lifted by time or by an administrator, never by a correct code;
while a user is locked no code is evaluated (so a lock cannot be used as an oracle).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    threshold: int = 10
    """Consecutive failures that lock the user."""
    minutes: float = 15
    """How long a lock lasts."""


class UserState(msgspec.Struct, frozen=True):
    """Authentication state of one user that changes with every attempt (immutable; built in C,
    as ``core.verification`` explains)."""

    failures: int = 0
    locked_until: float | None = None
    bypass_until: float | None = None

    def locked(self, now: float) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def bypass_open(self, now: float) -> bool:
        return self.bypass_until is not None and now <= self.bypass_until


def after_failure(state: UserState, policy: LockoutPolicy, now: float) -> UserState:
    """Count one failure; lock (and restart the count) when the threshold is reached.

    >>> p = LockoutPolicy(threshold=2, minutes=1)
    >>> s = after_failure(UserState(), p, 100.0)
    >>> s.failures, s.locked_until
    (1, None)
    >>> after_failure(s, p, 100.0)
    UserState(failures=0, locked_until=160.0, bypass_until=None)
    """
    base = state if not (state.locked_until and now >= state.locked_until) else UserState()
    failures = base.failures + 1
    if failures >= policy.threshold:
        return UserState(0, now + policy.minutes * 60, base.bypass_until)
    return UserState(failures, None, base.bypass_until)


def after_success(state: UserState) -> UserState:
    """A correct code clears the failure count (and a stale, expired lock)."""
    if state.failures == 0 and state.locked_until is None:
        return state  # the common case: nothing to change, nothing to allocate
    return UserState(0, None, state.bypass_until)
