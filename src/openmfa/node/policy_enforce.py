"""What a policy rule changes in one authentication attempt (``node.authenticator`` calls it;
``core.policy`` compiled the rule). Kept apart so the authenticator's hot path gains one call
and one branch, and the rules' effects are read in one place.

Rules owned here:
- ``skip`` (a trusted network): a known, enabled person who is not locked is accepted without a
  second factor — on the SDK at once (its caller checked the first factor), on RADIUS only after
  the node checked the password (``node.first_factor``: the attempt before it answers
  ``skipped``, the attempt after it is accepted). Never for a wrong first factor;
- allowed methods: the code is tried against the allowed methods only; a code that a method the
  rule does not allow would have taken is refused with ``method_not_allowed`` (a failure toward
  the lock, like any refused code); so is a push the rule does not allow, or one asked where the
  rule wants it numbered and the channel cannot show a number (no failure: asking for a push is
  no guess; a RADIUS client then asks for a code instead);
- ``pin=required``: the PIN is checked by the caller off the commit thread (``node.pins``), so
  an attempt not checked yet is answered ``pin_needed`` (nothing counted or audited; a locked
  person's goes on to its ``locked``); a wrong PIN is ``wrong_pin``, a failure toward the lock,
  with no code evaluated and no push sent; no PIN set is ``pin_not_set`` (nothing counted);
  where no PIN can travel (MS-CHAPv2, EAP) the rule's ``pin_elsewhere`` says: ``push`` goes
  on, ``refuse`` is ``method_not_allowed`` (nothing counted). Only a right PIN lets the code
  (what followed it) be tried;
- the lockout threshold: the rule's replaces ``[policy]``'s for this attempt;
- every decision a rule changed is audited with the rule's name (the ``detail`` returned here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.lockout import UserState, after_failure
from ..core.policy import Compiled
from ..core.verification import (
    PUSH_WORDS,
    Decision,
    Method,
    MethodKind,
    MethodState,
    Outcome,
    Reason,
    decide,
)

if TYPE_CHECKING:
    from .authenticator import Attempt

_PUSH = MethodKind.PUSH
_REFUSABLE = frozenset({Reason.WRONG_CODE, Reason.MALFORMED, Reason.NO_METHOD})
"""Refusals that a method the rule excluded might have turned into an acceptance."""


def split_methods(
    rule: Compiled, methods: list[Method], code: str, numbered: bool
) -> tuple[list[Method], list[Method]]:
    """(the methods this attempt may use, the ones the rule keeps it from)."""
    kinds = rule.kinds
    no_push = rule.rule.numbered and not numbered and code.strip().lower() in PUSH_WORDS
    if kinds is None and not no_push:
        return methods, []
    allowed: list[Method] = []
    excluded: list[Method] = []
    for m in methods:
        ok = (kinds is None or m.kind in kinds) and not (no_push and m.kind == _PUSH)
        (allowed if ok else excluded).append(m)
    return allowed, excluded


def not_allowed(
    out: Outcome,
    excluded: list[Method],
    code: str,
    now: float,
    *,
    state: UserState,
    method_states: dict[str, MethodState],
    unused: dict[str, list[tuple[int, bytes]]],
    pepper: bytes,
    rule: Compiled,
) -> Outcome | None:
    """``method_not_allowed`` when a refused code would have been taken (or a push opened) by a
    method the rule excluded (a failure toward the lock); with no allowed method at all, a
    wrong code's refusal, counted; None otherwise. Nothing of an excluded method is used up."""
    if not excluded or out.decision.accepted or out.decision.reason not in _REFUSABLE:
        return None
    probe = decide(
        code,
        now,
        state=state,
        methods=excluded,
        method_states=method_states,
        unused_backup_codes=unused,
        pepper=pepper,
        policy=rule.policy,
    )
    found = probe.decision
    if not (found.accepted or found.reason is Reason.PENDING):
        if out.decision.reason is Reason.NO_METHOD:
            # No allowed method at all: the code is still a guess at the others, counted as
            # one (else method_not_allowed would tell a right code with no lock to stop it).
            return Outcome(probe.decision, probe.user_state, newly_locked=probe.newly_locked)
        return None
    counted = out.user_state
    if found.reason is Reason.PENDING:
        counted = state  # a push asked for is no guess at a code: nothing counted
    elif out.decision.reason is Reason.NO_METHOD:
        counted = after_failure(state, rule.policy.lockout, now)  # no_method counted nothing
    locked = counted.locked(now)
    return Outcome(
        Decision(
            False,
            Reason.METHOD_NOT_ALLOWED,
            found.method_id,
            locked_until=counted.locked_until if locked else None,
        ),
        counted,
        newly_locked=locked,
    )


def kind_of(methods: list[Method], method_id: str | None) -> str:
    return next((str(m.kind) for m in methods if m.id == method_id), "push")


def skipped(rule: Compiled) -> str:
    return f"second factor skipped by policy rule {rule.name}"


def refused(rule: Compiled, kind: str) -> str:
    return f"method {kind} not allowed by policy rule {rule.name}"


def locked_by(rule: Compiled) -> str:
    return f"lockout threshold {rule.policy.lockout.threshold} of policy rule {rule.name}"


def pin_gate(
    rule: Compiled, a: Attempt, state: UserState, now: float
) -> tuple[Decision, UserState, str] | None:
    """A ``pin=required`` rule's answer for ``a`` (decision, the person's new state, audit
    detail), or None: go on and decide the code (the PIN was right, or the person is locked and
    ``decide`` says so)."""
    pin = a.pin
    if pin == "ok":
        return None
    locked = state.locked(now)
    if pin == "":
        return None if locked else (Decision(False, Reason.PIN_NEEDED), state, "")
    if locked:
        return None
    if pin == "elsewhere":
        if rule.rule.pin_elsewhere == "push":
            return None
        detail = f"a PIN cannot travel here; refused by policy rule {rule.name} (pin-elsewhere)"
        return Decision(False, Reason.METHOD_NOT_ALLOWED), state, detail
    if pin == "unset":
        detail = f"no PIN set; policy rule {rule.name} requires one"
        return Decision(False, Reason.PIN_NOT_SET), state, detail
    new = after_failure(state, rule.policy.lockout, now)
    until = new.locked_until if new.locked(now) else None
    detail = f"wrong PIN (policy rule {rule.name})"
    if until is not None and rule.rule.lockout_threshold is not None:
        detail += "; " + locked_by(rule)
    return Decision(False, Reason.WRONG_PIN, locked_until=until), new, detail
