from __future__ import annotations

import pytest

from openmfa.core import backup_codes, verification
from openmfa.core.hotp import hotp
from openmfa.core.lockout import LockoutPolicy, UserState
from openmfa.core.totp import step_at, totp
from openmfa.core.verification import (
    Attempted,
    Check,
    Decision,
    Kind,
    Method,
    MethodKind,
    MethodState,
    Outcome,
    Reason,
    VerifyPolicy,
    decide,
)

KEY = b"12345678901234567890"
PEPPER = b"p" * 32
NOW = 1_700_000_000.0
TOTP = Method("t1", MethodKind.TOTP, KEY)
HOTP = Method("h1", MethodKind.HOTP, KEY)
BACKUP = Method("b1", MethodKind.BACKUP_CODES)
POLICY = VerifyPolicy(lockout=LockoutPolicy(threshold=3, minutes=15))


def run(
    code: str,
    *,
    state: UserState | None = None,
    methods: list[Method] | None = None,
    states: dict[str, MethodState] | None = None,
    backups: dict[str, list[tuple[int, bytes]]] | None = None,
    now: float = NOW,
) -> Outcome:
    return decide(
        code,
        now,
        state=state or UserState(),
        methods=[TOTP] if methods is None else methods,
        method_states=states or {},
        unused_backup_codes=backups or {},
        pepper=PEPPER,
        policy=POLICY,
    )


def test_totp_accepted_and_step_recorded() -> None:
    out = run(totp(KEY, NOW))
    assert out.decision.accepted and out.decision.reason == Reason.OK
    assert out.method_state == ("t1", MethodState(last_step=step_at(NOW), counter=0))


def test_totp_replay_is_rejected_and_counted() -> None:
    out = run(totp(KEY, NOW), states={"t1": MethodState(last_step=step_at(NOW))})
    assert not out.decision.accepted and out.decision.reason == Reason.REPLAY
    assert out.user_state.failures == 1


def test_codes_with_spaces_are_normalised() -> None:
    code = totp(KEY, NOW)
    assert run(f"{code[:3]} {code[3:]}").decision.accepted


def test_hotp_counter_moves_forward() -> None:
    out = run(hotp(KEY, 3), methods=[HOTP], states={"h1": MethodState(counter=1)})
    assert out.decision.accepted and out.method_state == ("h1", MethodState(counter=4))
    behind = run(hotp(KEY, 0), methods=[HOTP], states={"h1": MethodState(counter=1)})
    assert behind.decision.reason == Reason.WRONG_CODE


def test_backup_code_single_use() -> None:
    code = "12345-67890"
    stored = [(7, backup_codes.hash_code(PEPPER, code))]
    out = run("1234567890", methods=[BACKUP], backups={"b1": stored})
    assert out.decision.accepted and out.backup_code_used == 7
    spent = run(code, methods=[BACKUP], backups={"b1": []})
    assert spent.decision.reason == Reason.NO_METHOD


def test_lockout_after_threshold_and_no_oracle_while_locked() -> None:
    state = UserState()
    for _ in range(2):
        out = run("000000", state=state)
        state = out.user_state
        assert out.decision.reason == Reason.WRONG_CODE and not out.newly_locked
    out = run("000000", state=state)
    assert out.newly_locked and out.decision.locked_until == NOW + 15 * 60
    # While locked even the right code is refused and not evaluated.
    locked = run(totp(KEY, NOW + 60), state=out.user_state, now=NOW + 60)
    assert locked.decision.reason == Reason.LOCKED and not locked.decision.accepted
    # After the lock expires the right code works again.
    later = NOW + 16 * 60
    assert run(totp(KEY, later), state=out.user_state, now=later).decision.accepted


def test_a_wrong_first_factor_counts_toward_the_lock_and_evaluates_no_code() -> None:
    def wrong_password(state: UserState, code: str = "", now: float = NOW) -> Outcome:
        return decide(
            code, now, state=state, methods=[TOTP], method_states={}, unused_backup_codes={},
            pepper=PEPPER, policy=POLICY, first_factor_failed=True,
        )  # fmt: skip

    # Even with the right code beside it, nothing is accepted and a failure counts.
    out = wrong_password(UserState(), totp(KEY, NOW))
    assert (out.decision.accepted, out.decision.reason) == (False, Reason.WRONG_PASSWORD)
    assert out.user_state.failures == 1 and out.method_state is None
    out = wrong_password(wrong_password(out.user_state).user_state)
    assert out.newly_locked and out.decision.locked_until == NOW + 15 * 60
    # A bypass does not open the door to a wrong password either.
    assert not wrong_password(UserState(bypass_until=NOW + 60)).decision.accepted
    # Locked: refused, and the count does not move.
    again = wrong_password(out.user_state, now=NOW + 60)
    assert again.decision.reason == Reason.LOCKED and again.user_state == out.user_state


def test_bypass_is_spent_once_and_expires() -> None:
    state = UserState(bypass_until=NOW + 30)
    out = run("", state=state)
    assert out.decision.accepted and out.decision.reason == Reason.BYPASS and out.bypass_used
    assert out.user_state.bypass_until is None
    expired = run("", state=UserState(bypass_until=NOW - 1))
    assert not expired.decision.accepted


def test_malformed_and_no_method() -> None:
    assert run("abc").decision.reason == Reason.MALFORMED
    assert run("123456", methods=[]).decision.reason == Reason.NO_METHOD


def test_success_clears_failures() -> None:
    out = run(totp(KEY, NOW), state=UserState(failures=2))
    assert out.user_state.failures == 0


def test_a_method_kind_is_a_registered_plug_in_and_may_leave_a_decision_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The seam the push approval plugs into: a kind registered beside TOTP, HOTP and backup
    codes, whose answer may be "pending" (not accepted, not a failure)."""
    monkeypatch.setattr(verification, "KINDS", dict(verification.KINDS))
    seen: list[str] = []

    def push(a: Attempted) -> Check | None:
        seen.append(a.code)
        return Check(pending=True) if a.code == "" else None

    verification.register("push-test", Kind(push, keyed=False))
    with pytest.raises(ValueError, match="registered already"):
        verification.register("push-test", Kind(push))
    phone = Method("p1", "push-test", b"")  # type: ignore[arg-type]
    out = run("", methods=[phone], state=UserState(failures=1))
    assert out.decision == Decision(False, Reason.PENDING, method_id="p1")
    assert out.user_state.failures == 1  # waiting is not failing
    assert run("123456", methods=[phone, TOTP]).decision.reason == Reason.WRONG_CODE
    assert seen == ["", "123456"]


def test_a_temporary_access_code_works_once_and_only_until_its_time() -> None:
    code = "12345-67890"
    access = Method("a1", MethodKind.ACCESS_CODE, b'{"until": %d}' % (NOW + 3600))
    stored = {"a1": [(9, backup_codes.hash_code(PEPPER, "1234567890"))]}
    ok = run(code, methods=[access], backups=stored)
    assert ok.decision.accepted and ok.backup_code_used == 9
    assert run(code, methods=[access], backups={"a1": []}).decision.reason == Reason.NO_METHOD
    late = run(code, methods=[access], backups=stored, now=NOW + 3601)
    assert late.decision.reason == Reason.NO_METHOD  # expired: as if it were not there
    with_app = run(code, methods=[access, TOTP], backups=stored, now=NOW + 3601)
    assert with_app.decision.reason == Reason.WRONG_CODE
    broken = Method("a2", MethodKind.ACCESS_CODE, b"not json")
    assert run(code, methods=[broken], backups={"a2": stored["a1"]}).decision.reason == (
        Reason.NO_METHOD
    )


def test_a_passkey_answers_no_typed_code() -> None:
    passkey = Method("k1", MethodKind.PASSKEY)
    assert run("123456", methods=[passkey]).decision.reason == Reason.NO_METHOD
    assert run(totp(KEY, NOW), methods=[passkey, TOTP]).decision.accepted
