"""One authentication attempt: which of a user's methods, if any, accepts a code.

``decide`` is the whole rule book and it is pure: the caller loads the user's methods and
state, passes ``now``, and stores what comes back. Expected denials are values (``Decision``),
never exceptions.

Order of the rules (each one is final):
1. locked → ``locked`` (the code is not looked at and not counted); asked before a first factor
   is checked (``before_first_factor``), not locked → ``pending`` (go on: check it), nothing
   counted;
2. an open one-time bypass → accepted with ``bypass``, and the bypass is spent;
3. no usable method → ``no_method``;
4. the code, normalised, is tried against every method, each by the plug-in of its kind
   (``KINDS``: TOTP, HOTP, backup codes, push devices); a fresh match → accepted; a match of
   an already used TOTP step → ``replay``; otherwise ``malformed`` (not digits) or
   ``wrong_code``. Every one of these counts as a failure towards the lockout. A plug-in may
   also answer that the decision is *pending* (a push approval the user has not given yet, or
   an empty code for a user with a device): ``pending``, not a failure.

What is made once per attempt (``Decision``, ``MethodState``, ``Outcome``, ``Attempted``,
``Check``) is a ``msgspec.Struct``: immutable where it was a frozen dataclass, but built in C —
a frozen dataclass sets each field through ``object.__setattr__`` (about 1,500 instructions a
field on CPython 3.11), which made these objects a fifth of a RADIUS request's cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import msgspec

from . import backup_codes, hotp, totp
from .compare import normalize_code
from .lockout import LockoutPolicy, UserState, after_failure, after_success


class MethodKind(StrEnum):
    TOTP = "totp"
    HOTP = "hotp"
    BACKUP_CODES = "backup-codes"
    PUSH = "push"
    """A device that approves sign-ins (number matching); offline, it shows a TOTP code."""
    PASSKEY = "passkey"
    """A WebAuthn credential (``node.passkeys``): the portal's ceremony, never a typed code."""
    ACCESS_CODE = "access-code"
    """A temporary access code from the helpdesk: a backup-code-like code (single use by
    default) that works until the time sealed as the method's secret."""


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
    PENDING = "pending"
    """The decision waits for the user (a push approval): not accepted yet, not a failure."""
    PUSH_LIMITED = "push_limited"
    """Too many push requests open for this user, or the last one was too recent."""
    PUSH_BLOCKED = "push_blocked"
    """The user reported a push as fraud; no push until an administrator unblocks them."""
    PUSH_UNAVAILABLE = "push_unavailable"
    """Push requests are opened at the farm's master, which this node cannot reach now."""
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - a reason code, not a password
    """The first factor (a password the caller checked) was wrong: a failure, like a wrong code."""
    SKIPPED = "skipped"
    """A policy rule (a trusted network) skips the second factor: accepted with no code; asked
    before the first factor is checked, not accepted: the password alone decides."""
    METHOD_NOT_ALLOWED = "method_not_allowed"
    """The code (or push) is one of a method the policy rule that applies does not allow."""
    WRONG_PIN = "wrong_pin"
    """The policy rule wants a PIN before the code and the PIN was wrong (or missing): a
    failure toward the lock; no code evaluated, no push sent."""
    PIN_NOT_SET = "pin_not_set"
    """The policy rule wants a PIN and the person has none: an administrator sets one."""
    PIN_NEEDED = "pin_needed"
    """Not an answer: the policy rule wants a PIN, which the caller checks (argon2, off the
    commit thread: ``node.pins``) and then asks again. Never audited, never shown."""


@dataclass(frozen=True, slots=True)
class Method:
    """An enrolled method as verification needs it (secret already decrypted)."""

    id: str
    kind: MethodKind
    key: bytes = b""
    digits: int = 6
    period: int = 30
    algorithm: str = "SHA1"


class MethodState(msgspec.Struct, frozen=True):
    """A method's own state (a frozen ``msgspec.Struct``: see the top of this module)."""

    last_step: int = -1
    """TOTP: the last accepted time step."""
    counter: int = 0
    """HOTP: the next counter value expected."""


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    totp_drift_steps: int = 1
    hotp_look_ahead: int = 10


class Decision(msgspec.Struct, frozen=True):
    accepted: bool
    reason: Reason
    method_id: str | None = None
    locked_until: float | None = None
    pending: tuple[str, str, float] | None = None
    """With ``pending``: the push request's (id, number to show, expiry)."""


class Outcome(msgspec.Struct):
    """A decision plus the state changes the caller must store with it."""

    decision: Decision
    user_state: UserState
    method_state: tuple[str, MethodState] | None = None
    backup_code_used: int | None = None
    newly_locked: bool = False
    bypass_used: bool = False
    notes: list[str] = msgspec.field(default_factory=list)


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
    first_factor_failed: bool = False,
    before_first_factor: bool = False,
) -> Outcome:
    """``first_factor_failed``: the caller's first factor was wrong; no code is evaluated, a
    failure counts toward the lock (so guessing passwords locks the user as guessing codes
    does). ``before_first_factor``: the caller is about to check the first factor and asks
    only whether it may (a locked user's password is not checked at all)."""
    if state.locked(now):
        return Outcome(Decision(False, _LOCKED, locked_until=state.locked_until), state)
    if before_first_factor:
        return Outcome(Decision(False, _PENDING), state)
    if first_factor_failed:
        new = after_failure(state, policy.lockout, now)
        locked = new.locked(now)
        until = new.locked_until if locked else None
        return Outcome(
            Decision(False, _WRONG_PASSWORD, locked_until=until), new, newly_locked=locked
        )
    if state.bypass_until is not None:
        if state.bypass_open(now):
            new = UserState(0, None, None)
            return Outcome(Decision(True, _BYPASS), new, bypass_used=True)
        state = UserState(state.failures, state.locked_until, None)  # expired: forget it
    usable: list[tuple[Method, Kind]] = []
    for m in methods:
        kind = KINDS[m.kind]
        if kind.usable is _always or kind.usable(m, unused_backup_codes, now):
            usable.append((m, kind))
    if not usable:
        return Outcome(Decision(False, _NO_METHOD), state)

    normalized = normalize_code(code)
    replay_of: str | None = None
    for m, kind in usable:
        check = kind.check(
            Attempted(
                m,
                normalized,
                now,
                method_states.get(m.id, _FRESH),
                unused_backup_codes.get(m.id, []),
                pepper,
                policy,
            )
        )
        if check is None:
            continue
        if check.pending:
            return Outcome(Decision(False, _PENDING, method_id=m.id), state)
        if check.replay:
            replay_of = replay_of or m.id
            continue
        return Outcome(
            Decision(True, _OK, method_id=m.id),
            after_success(state),
            None if check.state is None else (m.id, check.state),
            check.backup_code_used,
        )

    if replay_of is not None:
        reason = _REPLAY
    elif not normalized.isdigit():
        reason = _MALFORMED
    else:
        reason = _WRONG_CODE
    new = after_failure(state, policy.lockout, now)
    locked = new.locked(now)
    return Outcome(
        Decision(
            False, reason, method_id=replay_of, locked_until=new.locked_until if locked else None
        ),
        new,
        newly_locked=locked,
    )


_FRESH = MethodState()
"""A method with no stored state yet (immutable, so one serves every attempt)."""
# Enum members looked up once: ``Reason.X`` goes through ``EnumType.__getattr__``'s slow
# attribute hook on CPython 3.11 (about 900 instructions a lookup).
_OK, _BYPASS, _LOCKED, _PENDING = Reason.OK, Reason.BYPASS, Reason.LOCKED, Reason.PENDING
_NO_METHOD, _REPLAY, _MALFORMED = Reason.NO_METHOD, Reason.REPLAY, Reason.MALFORMED
_WRONG_CODE, _WRONG_PASSWORD = Reason.WRONG_CODE, Reason.WRONG_PASSWORD


# -- method kinds ------------------------------------------------------------------------------


class Attempted(msgspec.Struct):
    """What a method kind's plug-in is given: the method, the code, now and their state."""

    method: Method
    code: str
    """Normalised (``compare.normalize_code``)."""
    now: float
    state: MethodState
    unused_backup_codes: list[tuple[int, bytes]]
    pepper: bytes
    policy: VerifyPolicy


class Check(msgspec.Struct):
    """What one method says of a code (a plug-in returns None when it does not match)."""

    state: MethodState | None = None
    """The method's state after an acceptance (TOTP step, HOTP counter), if it moves."""
    backup_code_used: int | None = None
    replay: bool = False
    """It matched a code already used: counts as a failure, with ``replay``."""
    pending: bool = False
    """The decision waits for the user (the next issue's push approval)."""


def _always(_m: Method, _unused: dict[str, list[tuple[int, bytes]]], _now: float) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Kind:
    """A method kind as a plug-in: how it checks a code and what it keeps."""

    check: Callable[[Attempted], Check | None]
    usable: Callable[[Method, dict[str, list[tuple[int, bytes]]], float], bool] = _always
    """Whether the method can accept anything now (the default: always, and then it is not
    even asked)."""
    keyed: bool = True
    """It holds a secret (sealed at rest, opened when the user is loaded)."""
    moves: str | None = None
    """The ``MethodState`` field an acceptance moves forward (``last_step``, ``counter``), which
    a farm claims at its master; None: nothing (a backup code is claimed by its hash)."""


def _totp(a: Attempted) -> Check | None:
    m = a.method
    match = totp.verify(
        m.key,
        a.code,
        a.now,
        last_step=a.state.last_step,
        drift_steps=a.policy.totp_drift_steps,
        digits=m.digits,
        period=m.period,
        algorithm=m.algorithm,
    )
    if match is None:
        return None
    if match.replayed:
        return Check(replay=True)
    return Check(state=MethodState(match.step, a.state.counter))


def _hotp(a: Attempted) -> Check | None:
    m = a.method
    nxt = hotp.verify(
        m.key,
        a.code,
        a.state.counter,
        look_ahead=a.policy.hotp_look_ahead,
        digits=m.digits,
        algorithm=m.algorithm,
    )
    return None if nxt is None else Check(state=MethodState(a.state.last_step, nxt))


PUSH_WORDS = frozenset({"", "push"})
"""What asks for a push instead of a code (RADIUS clients send an empty password or "push")."""


def _push(a: Attempted) -> Check | None:
    if a.code.lower() in PUSH_WORDS:
        return Check(pending=True)
    return _totp(a)  # the device's offline code


def _backup(a: Attempted) -> Check | None:
    if not backup_codes.looks_like(a.code):
        return None
    used = backup_codes.match(a.pepper, a.code, a.unused_backup_codes)
    return None if used is None else Check(backup_code_used=used)


KINDS: dict[str, Kind] = {
    MethodKind.TOTP: Kind(_totp, moves="last_step"),
    MethodKind.HOTP: Kind(_hotp, moves="counter"),
    MethodKind.BACKUP_CODES: Kind(
        _backup, usable=lambda m, unused, _now: bool(unused.get(m.id)), keyed=False
    ),
    MethodKind.PUSH: Kind(_push, moves="last_step"),
    MethodKind.PASSKEY: Kind(lambda _a: None, usable=lambda _m, _u, _now: False, keyed=False),
    MethodKind.ACCESS_CODE: Kind(
        _backup,
        usable=lambda m, unused, now: bool(unused.get(m.id)) and access_code_until(m.key) > now,
    ),
}
"""Every method kind by its name; a new kind registers here (``register``)."""


def access_code_until(sealed_text: bytes) -> float:
    """When a temporary access code ends (its method's secret: ``{"until": EPOCH}``)."""
    try:
        return float(json.loads(sealed_text)["until"])
    except (ValueError, KeyError, TypeError):
        return 0.0


def register(name: str, kind: Kind) -> None:
    if name in KINDS:
        raise ValueError(f"method kind {name!r} is registered already")
    KINDS[name] = kind
