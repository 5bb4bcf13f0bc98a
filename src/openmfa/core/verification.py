"""One authentication attempt: which of a user's methods, if any, accepts a code.

``decide`` is the whole rule book and it is pure: the caller loads the user's methods and
state, passes ``now``, and stores what comes back. Expected denials are values (``Decision``),
never exceptions.

Order of the rules (each one is final):
1. locked → ``locked`` (the code is not looked at and not counted);
2. an open one-time bypass → accepted with ``bypass``, and the bypass is spent;
3. no usable method → ``no_method``;
4. the code, normalised, is tried against every TOTP, HOTP and backup-code method;
   a fresh match → accepted; a match of an already used TOTP step → ``replay``;
   otherwise ``malformed`` (not digits) or ``wrong_code``. Every one of these counts as a
   failure towards the lockout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from . import backup_codes, hotp, totp
from .compare import normalize_code
from .lockout import LockoutPolicy, UserState, after_failure, after_success


class MethodKind(StrEnum):
    TOTP = "totp"
    HOTP = "hotp"
    BACKUP_CODES = "backup-codes"


class Reason(StrEnum):
    """Stable reason codes; they appear in the SDK, the CLI and the audit log."""

    OK = "ok"
    BYPASS = "bypass"
    UNKNOWN_USER = "unknown_user"
    DISABLED = "disabled"
    LOCKED = "locked"
    NO_METHOD = "no_method"
    MALFORMED = "malformed"
    WRONG_CODE = "wrong_code"
    REPLAY = "replay"
    MASTER_UNREACHABLE = "master_unreachable"
    """A farm subordinate could not claim the code at its master and policy fails closed."""


@dataclass(frozen=True, slots=True)
class Method:
    """An enrolled method as verification needs it (secret already decrypted)."""

    id: str
    kind: MethodKind
    key: bytes = b""
    digits: int = 6
    period: int = 30
    algorithm: str = "SHA1"


@dataclass(frozen=True, slots=True)
class MethodState:
    last_step: int = -1
    """TOTP: the last accepted time step."""
    counter: int = 0
    """HOTP: the next counter value expected."""


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    totp_drift_steps: int = 1
    hotp_look_ahead: int = 10


@dataclass(frozen=True, slots=True)
class Decision:
    accepted: bool
    reason: Reason
    method_id: str | None = None
    locked_until: float | None = None


@dataclass(slots=True)
class Outcome:
    """A decision plus the state changes the caller must store with it."""

    decision: Decision
    user_state: UserState
    method_state: tuple[str, MethodState] | None = None
    backup_code_used: int | None = None
    newly_locked: bool = False
    bypass_used: bool = False
    notes: list[str] = field(default_factory=list)


def decide(
    code: str,
    now: float,
    *,
    state: UserState,
    methods: list[Method],
    method_states: dict[str, MethodState],
    unused_backup_codes: dict[str, list[tuple[int, bytes]]],
    pepper: bytes,
    policy: VerifyPolicy,
) -> Outcome:
    if state.locked(now):
        return Outcome(Decision(False, Reason.LOCKED, locked_until=state.locked_until), state)
    if state.bypass_open(now):
        new = UserState(0, None, None)
        return Outcome(Decision(True, Reason.BYPASS), new, bypass_used=True)
    if state.bypass_until is not None:  # expired: forget it
        state = UserState(state.failures, state.locked_until, None)
    usable = [
        m for m in methods if m.kind != MethodKind.BACKUP_CODES or unused_backup_codes.get(m.id)
    ]
    if not usable:
        return Outcome(Decision(False, Reason.NO_METHOD), state)

    normalized = normalize_code(code)
    replay_of: str | None = None
    for m in usable:
        ms = method_states.get(m.id, MethodState())
        if m.kind == MethodKind.TOTP:
            match = totp.verify(
                m.key,
                normalized,
                now,
                last_step=ms.last_step,
                drift_steps=policy.totp_drift_steps,
                digits=m.digits,
                period=m.period,
                algorithm=m.algorithm,
            )
            if match is not None and not match.replayed:
                return _accepted(state, m.id, (m.id, MethodState(match.step, ms.counter)))
            if match is not None:
                replay_of = replay_of or m.id
        elif m.kind == MethodKind.HOTP:
            nxt = hotp.verify(
                m.key,
                normalized,
                ms.counter,
                look_ahead=policy.hotp_look_ahead,
                digits=m.digits,
                algorithm=m.algorithm,
            )
            if nxt is not None:
                return _accepted(state, m.id, (m.id, MethodState(ms.last_step, nxt)))
        elif backup_codes.looks_like(normalized):
            used = backup_codes.match(pepper, normalized, unused_backup_codes[m.id])
            if used is not None:
                out = _accepted(state, m.id, None)
                out.backup_code_used = used
                return out

    if replay_of is not None:
        reason = Reason.REPLAY
    elif not normalized.isdigit():
        reason = Reason.MALFORMED
    else:
        reason = Reason.WRONG_CODE
    new = after_failure(state, policy.lockout, now)
    locked = new.locked(now)
    return Outcome(
        Decision(
            False, reason, method_id=replay_of, locked_until=new.locked_until if locked else None
        ),
        new,
        newly_locked=locked,
    )


def _accepted(
    state: UserState, method_id: str, method_state: tuple[str, MethodState] | None
) -> Outcome:
    return Outcome(
        Decision(True, Reason.OK, method_id=method_id), after_success(state), method_state
    )
