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
- the lockout threshold: the rule's replaces ``[policy]``'s for this attempt;
- every decision a rule changed is audited with the rule's name (the ``detail`` returned here).
"""

from __future__ import annotations

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
