"""Authentication attempts against the data file: load, ``core.verification.decide``, store.

Invariant owned here: the decision, its state changes (TOTP step, HOTP counter, backup code,
failure count, lockout, spent bypass) and its audit record are committed in one transaction
before the answer is given. ``run`` takes a batch of attempts so a server can commit many
concurrent attempts together; each attempt still sees the effects of the ones before it.

How the state is read, cached and written (and why that is exact on SQLite and on PostgreSQL)
is ``node.auth_state``. On a farm subordinate each batch runs through the farm's claim round
(``farm.claim_round``): the authenticator itself never makes a network call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..core.compare import normalize_code
from ..core.lockout import UserState, after_failure, after_success
from ..core.policy import RuleBook
from ..core.verification import (
    KINDS,
    Decision,
    Method,
    MethodKind,
    Outcome,
    Reason,
    VerifyPolicy,
    decide,
)
from ..errors import OpenMfaError
from ..store.database import Store
from ..store.prepared import dbapi_cursor
from . import policy_enforce as enforce
from .apikeys import KeyRing
from .audit import seal_origin
from .auth_state import AuthState, CachedState, CachedUser, Discard, Pending
from .master_claims import (
    CLAIMED,
    FAILED_CLOSED,
    LOCAL_ONLY,
    LOCKED_AT_MASTER,
    USED_ELSEWHERE,
    Claim,
    ClaimResult,
    Verdicts,
)
from .policy_rules import RuleCache
from .radius_cache import RadiusCache, cache_at_master

if TYPE_CHECKING:
    from .push import Opened, PushService


class Collected(Discard):
    """The batch needs the master's word on some acceptances: nothing of this pass is kept."""


class Round(Protocol):
    """How a farm subordinate runs a batch (``farm.claim_round.ClaimRound``)."""

    def run(
        self, auth: Authenticator, attempts: list[Attempt], now: float
    ) -> list[Decision | OpenMfaError]: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class Attempt:
    """One request to decide; treat it as immutable (``dataclasses.replace`` makes a changed
    copy). Not a frozen dataclass only because one is made per request: a frozen one sets each of
    its fields through ``object.__setattr__`` (about 19,000 instructions in all, against
    5,000)."""

    user: str
    code: str
    client: str = "cli"
    """Who asked: ``cli``, a RADIUS client's name, or the SDK API key's name."""
    request_id: str = ""
    token: str | None = None
    """An SDK request's API key (checked before its body was read): checked again against this
    batch's configuration generation, so a key revoked a moment ago is refused."""
    source: str = ""
    """Where the sign-in comes from (an address), shown on the phone with a push request and
    kept, sealed, with the audit row (``audit.Origin``)."""
    browser: str = ""
    """A browser sign-in's browser and system ("Firefox", "Android": ``audit.Origin``)."""
    system: str = ""
    push: bool = True
    """False: the caller cannot wait for a push (a RADIUS client with ``--push off``)."""
    numbered: bool = True
    """False: the caller cannot show a number (a RADIUS client that holds instead of
    challenging); the phone then approves without typing one."""
    first_factor_failed: bool = False
    """The caller checked the user's password and it was wrong (``node.first_factor``: the
    portal, a RADIUS client with a primary): no code is evaluated; a failure counts toward the
    lock."""
    before_first_factor: bool = False
    """The caller is about to check the user's password (``node.first_factor``) and asks only
    whether it may: ``locked`` (audited; the password is not to be checked), else ``pending``
    (nothing counted, nothing audited)."""
    channel: str = ""
    """The channel whose policy rules apply (``core.policy.CHANNELS``: ``sdk``, ``radius``);
    "": no rule applies (a channel that does not enforce rules yet)."""
    channel_client: str = ""
    """The RADIUS client's or SDK API key's name, as rules name it."""
    network: str = ""
    """The source address the channel vouches for (the NAS's; an SDK key's asserted one)."""
    station: str = ""
    """RADIUS: the Calling-Station-Id."""
    skippable: bool = False
    """A rule's ``skip`` accepts this attempt with no code (the SDK's; RADIUS skips only after
    its first factor, ``first_factor_passed``)."""
    no_skip: bool = False
    """No rule's ``skip`` applies (an OpenID Connect sign-in: its ID token vouches for MFA)."""
    first_factor_passed: bool = False
    """The caller checked the password and it was right, after an answer ``skipped``: accepted
    if a rule still skips the second factor, else ``pending`` (go on; nothing counted or
    audited)."""
    neutral: bool = False
    """The caller checked no first factor and its key may not know who exists (a portal or
    adapter key's ``/v1/authenticate``): an answer that would tell an unknown, disabled or
    methodless user from a known one is the answer a known user's wrong code gets (the audit
    row keeps the truth)."""
    pin: str = ""
    """Under a ``pin=required`` rule: "" (not checked yet: answered ``pin_needed``), or the
    verdict ``node.pins`` checked off the commit thread (``ok``: ``code`` is what followed the
    PIN; ``wrong``, ``unset``, ``elsewhere``: no PIN can travel)."""
    push_approved: bool = False
    """RADIUS: the phone approved this request's push (``radius.flows``): a full success, which
    starts a cache window as a typed code does (``node.radius_cache``); nothing else is decided
    or audited (the push's answer is)."""


class Authenticator:
    """Not thread-safe: one thread calls ``run`` (the server's commit thread, or the CLI)."""

    def __init__(
        self,
        store: Store,
        policy: VerifyPolicy,
        keyring: KeyRing | None = None,
        round: Round | None = None,
        push: PushService | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.keyring = keyring or KeyRing()
        self.round = round
        """A subordinate's claim round (None: this node decides alone)."""
        self.state = AuthState(store)
        self.rules = RuleCache(policy)
        """The policy rules, compiled once per configuration generation that changed them."""
        self.cache = RadiusCache(store)
        self.on_state: Callable[[list[tuple[str, str, int]]], None] | None = None
        """Told each committed batch's TOTP steps and HOTP counters (the farm's state push)."""
        self.push = push
        """Opens push requests when a decision is pending (None: push is off)."""
        self.on_push: Callable[[list[Opened]], None] | None = None
        """Told each committed batch's new push requests (to wake the devices)."""

    def close(self) -> None:
        self.state.close()

    def set_role(
        self,
        round: Round | None,
        on_state: Callable[[list[tuple[str, str, int]]], None] | None,
    ) -> None:
        """The farm role changed: batches run through ``round`` (a subordinate's claims at its
        master, or None), and committed state is told to ``on_state`` (a master's state push,
        or None). Called on the thread that calls ``run``, between two batches."""
        old = self.round
        self.round, self.on_state = round, on_state
        if old is not None and old is not round:
            old.close()

    def run(
        self, attempts: list[Attempt], now: float | None = None
    ) -> list[Decision | OpenMfaError]:
        """Decide every attempt, commit once. An API-key failure comes back as the error.

        On a farm subordinate the claim round (``farm.claim_round``) runs the batch: passes of
        ``decide`` with what the master answered in between."""
        now = time.time() if now is None else now
        if self.round is not None:
            return self.round.run(self, attempts, now)
        return self.decide(attempts, now, None)

    def decide(
        self, attempts: list[Attempt], now: float, verdicts: Verdicts | None
    ) -> list[Decision | OpenMfaError]:
        """One pass over the batch in one transaction, committed — unless ``verdicts`` shows
        acceptances that need the master's word, then it raises ``Collected`` (rolled back)."""
        results: list[Decision | OpenMfaError] = []
        audit: list[dict[str, Any]] = []
        node = self.store.node_name
        box = self.store.box
        pending = Pending() if self.state.exact else None
        opened: list[Opened] = []
        callers: dict[str, str | OpenMfaError] = {}
        """The batch's API keys, each checked once (a batch mostly comes from one app)."""
        with self.state.transaction() as conn:
            cur = dbapi_cursor(conn)
            if pending is not None:
                self.state.check_states(cur)
            generation = self.state.refresh(cur)
            book = self._rules(conn)
            for a in attempts:
                client = a.client
                if a.token is not None:
                    caller = callers.get(a.token)
                    if caller is None:
                        try:
                            api = self.keyring.check(conn, generation, a.token, now)
                            api.require("authenticate")
                            caller = api.name
                        except OpenMfaError as exc:
                            caller = exc
                        callers[a.token] = caller
                    if isinstance(caller, OpenMfaError):
                        results.append(caller)
                        continue
                    client = caller
                d, locked, detail = self._one(cur, a, now, pending, verdicts, book)
                if d.reason is _PIN_NEEDED or a.push_approved:
                    results.append(d)  # the caller checks the PIN, then asks again
                    continue
                if a.first_factor_passed and not d.accepted:
                    results.append(d)  # go on to the second factor (no rule skips it)
                    continue
                if a.before_first_factor:
                    if d.reason is not _LOCKED:
                        results.append(d)  # go on (no such user: the password check says no)
                        continue
                    detail = "first factor not checked"
                elif d.reason is _PENDING:
                    d, detail = self._open_push(conn, a, d, client, now, opened)
                elif a.first_factor_failed and not detail:
                    detail = "wrong first factor"
                results.append(_neutral(d, a.code) if a.neutral else d)
                row = {
                    "at": now,
                    "node": node,
                    "action": "authenticate",
                    "user_name": a.user,
                    "client": client,
                    "method_id": d.method_id or "",
                    "result": "accepted" if d.accepted else "rejected",
                    "reason": _TEXT[d.reason],
                    "request_id": a.request_id,
                    "detail": detail,
                    "source_enc": seal_origin(box, a.user, a.source, a.browser, a.system)
                    if a.source or a.browser
                    else "",
                }
                audit.append(row)
                if locked:
                    audit.append(row | {"action": "lockout", "result": "ok"})
            if verdicts is not None and verdicts.wanted:
                raise Collected  # nothing of this pass is kept
            if pending is not None:
                self.state.flush(cur, pending)
            if audit:
                self.state.sql.audit.many(cur, audit)
            cur.close()
        if (
            self.on_state is not None
            and pending is not None
            and (pending.steps or pending.counters)
        ):
            self.on_state(
                [(r["mid"], "totp", r["v"]) for r in pending.steps]
                + [(r["mid"], "hotp", r["v"]) for r in pending.counters]
            )
        if opened and self.on_push is not None:
            self.on_push(opened)
        return results

    def _rules(self, conn: Any) -> RuleBook:
        """The compiled rules of this generation (rebuilt only when a rule changed)."""
        if self.state.rules_changed:
            self.rules.stale = True
            self.state.rules_changed = False
        book = self.rules.current(conn)
        self.state.read_groups(book.uses_groups)
        return book

    def _open_push(
        self, conn: Any, a: Attempt, d: Decision, client: str, now: float, opened: list[Opened]
    ) -> tuple[Decision, str]:
        """A pending decision: open the push request (or join the same request's)."""
        if self.push is None or not a.push:
            return Decision(False, Reason.PUSH_UNAVAILABLE, d.method_id), "push is off"
        if self.round is not None:
            # A subordinate: the caller opens it at the master (``farm.push_relay``).
            return Decision(False, Reason.PENDING, d.method_id), "push at the farm's master"
        d, new = self.push.open(
            conn,
            a.user,
            d.method_id,
            client=client,
            source=a.source,
            request_id=a.request_id,
            now=now,
            numbered=a.numbered,
        )
        if new is not None:
            opened.append(new)
        return d, f"push {d.pending[0]}" if d.pending else ""

    def _one(
        self,
        cur: Any,
        a: Attempt,
        now: float,
        pending: Pending | None,
        verdicts: Verdicts | None = None,
        book: RuleBook | None = None,
    ) -> tuple[Decision, bool, str]:
        """Decide one attempt and store its state; returns (decision, newly locked, detail)."""
        user = self.state.user(cur, a.user)
        if user is None:
            if a.neutral:  # as long as a known user's wrong code takes (``_neutral``)
                _spend(a.code, now, self.policy)
            return Decision(False, Reason.UNKNOWN_USER), False, ""
        if not user.enabled:
            return Decision(False, Reason.DISABLED), False, ""
        policy, rule = self.policy, None
        if a.channel and book is not None:
            c = book.evaluate(a.channel, a.channel_client, a.network, a.station, user.groups)
            if not c.default:
                policy, rule = c.policy, c
        cached = self.state.state(cur, user.id, pending is not None)
        state, method_states = cached.user, cached.methods
        if (
            rule is not None
            and rule.rule.skips
            and not a.no_skip
            and not a.first_factor_failed
            and not state.locked(now)
        ):
            if a.before_first_factor:
                return Decision(False, _SKIPPED), False, ""  # the password alone decides
            if a.skippable or a.first_factor_passed:
                self._keep(cur, user.id, cached, state, after_success(state), pending)
                return Decision(True, _SKIPPED), False, enforce.skipped(rule)
        cache = self.cache.applies(cur, rule, a.channel, a.station, verdicts is not None)
        if a.push_approved:  # the phone approved: a full success, as a code of a method is
            if cache and not state.locked(now):
                self.cache.start(cur, user, a, now, None if verdicts is None else verdicts.after)
            return Decision(True, Reason.OK), False, ""
        if cache and (a.before_first_factor or a.first_factor_passed) and not state.locked(now):
            assert rule is not None  # RADIUS caching: a recent full success stands for the code
            where = (a.user, a.channel_client, a.station)
            if verdicts is None:
                hit = self.cache.hit(cur, user, where, rule, now, take=a.first_factor_passed)
            else:
                hit = cache_at_master(a, user.id, rule, verdicts)
            if hit and a.before_first_factor:
                return Decision(False, _SKIPPED), False, ""  # the password alone decides
            if hit and a.first_factor_passed:
                self._keep(cur, user.id, cached, state, after_success(state), pending)
                return Decision(True, _SKIPPED), False, hit
        if a.first_factor_passed:
            return Decision(False, _PENDING), False, ""  # no rule skips: the second factor
        if rule is not None and rule.rule.pin != "off" and not a.before_first_factor:
            gate = enforce.pin_gate(rule, a, state, now)
            if gate is not None:
                d, new, detail = gate
                if verdicts is not None and new.failures > state.failures:
                    self._claim_failure(user.id, new.failures, verdicts)
                self._keep(cur, user.id, cached, state, new, pending)
                return d, new.locked(now) and not state.locked(now), detail
        methods = user.methods
        excluded: list[Method] = []
        if rule is not None:
            methods, excluded = enforce.split_methods(rule, methods, a.code, a.numbered)
        unused: dict[str, list[tuple[int, bytes]]] = {}
        if user.has_backup:
            for code_id, method_id, code_hash in self.state.sql.backup.all(cur, uid=user.id):
                unused.setdefault(method_id, []).append((code_id, bytes(code_hash)))
        out = decide(
            a.code,
            now,
            state=state,
            methods=methods,
            method_states=method_states,
            unused_backup_codes=unused,
            pepper=self.store.box.pepper,
            policy=policy,
            first_factor_failed=a.first_factor_failed,
            before_first_factor=a.before_first_factor,
        )
        detail = ""
        if rule is not None:
            refused = enforce.not_allowed(
                out,
                excluded,
                a.code,
                now,
                state=state,
                method_states=method_states,
                unused=unused,
                pepper=self.store.box.pepper,
                rule=rule,
            )
            if refused is not None:
                out = refused
                detail = enforce.refused(rule, enforce.kind_of(excluded, out.decision.method_id))
            if out.newly_locked and rule.rule.lockout_threshold is not None:
                detail = "; ".join(x for x in (detail, enforce.locked_by(rule)) if x)
        if out.decision.accepted and verdicts is not None:
            verdict = self._claim_remote(user, out, unused, verdicts)
            if verdict is ClaimResult.UNREACHABLE and verdicts.fail_closed:
                d = Decision(False, Reason.MASTER_UNREACHABLE, out.decision.method_id)
                return d, False, FAILED_CLOSED  # not the user's fault: no failure counted
            if verdict is ClaimResult.LOCKED:
                return (
                    Decision(False, Reason.LOCKED, out.decision.method_id),
                    False,
                    LOCKED_AT_MASTER,
                )
            detail = {
                ClaimResult.OK: CLAIMED,
                ClaimResult.USED: USED_ELSEWHERE,
                ClaimResult.UNREACHABLE: LOCAL_ONLY,
            }[verdict]
            if verdict is ClaimResult.USED:
                out = Outcome(
                    Decision(False, Reason.REPLAY, out.decision.method_id),
                    after_failure(state, policy.lockout, now),
                )
        if out.decision.accepted and not self._claim(cur, user, out, now, pending):
            # Another writer used this step/counter/code between our read and write.
            out = Outcome(
                Decision(False, Reason.REPLAY, out.decision.method_id),
                after_failure(state, policy.lockout, now),
            )
        if (
            verdicts is not None
            and not out.decision.accepted
            and out.user_state.failures > state.failures
        ):
            # Count the failure at the master too, so failures on every node lock the user.
            # Its answer does not change this (already negative) decision.
            self._claim_failure(user.id, out.user_state.failures, verdicts)
        if out.method_state is not None and out.decision.accepted:
            method_states[out.method_state[0]] = out.method_state[1]
        if cache and out.decision.reason is Reason.OK:  # a full success: a new window
            self.cache.start(cur, user, a, now, None if verdicts is None else verdicts.after)
        elif out.newly_locked:  # a lock ends every cached success of the person
            self.cache.forget(cur, user.id)
        self._keep(cur, user.id, cached, state, out.user_state, pending)
        return out.decision, out.newly_locked, detail

    def _keep(
        self,
        cur: Any,
        user_id: int,
        cached: CachedState,
        state: UserState,
        new: UserState,
        pending: Pending | None,
    ) -> None:
        """Store the user's new state (failures, lock, bypass) if it changed."""
        if new is not state and new != state:
            cached.user = new
            row = {
                "uid": user_id,
                "f": new.failures,
                "lu": new.locked_until,
                "bu": new.bypass_until,
            }
            if pending is not None:
                pending.users.append(row)
            else:
                self.state.sql.set_state.run(cur, **row)

    def _claim_failure(self, user_id: int, failures: int, verdicts: Verdicts) -> None:
        claim: Claim = (str(user_id), "failure", failures)
        if claim not in verdicts.known:
            verdicts.failures.append(claim)

    def _claim_remote(
        self,
        user: CachedUser,
        out: Outcome,
        unused: dict[str, list[tuple[int, bytes]]],
        verdicts: Verdicts,
    ) -> ClaimResult:
        """What the master says of the code this acceptance uses up (nothing used: OK). Not
        asked yet: OK for now, and the pass is rolled back once it is over."""
        claim: Claim
        if out.method_state is not None:
            method_id, new = out.method_state
            kind = _kind(user, method_id)
            claim = (method_id, str(kind), getattr(new, _moves(kind)))
        elif out.backup_code_used is not None and out.decision.method_id is not None:
            method_id = out.decision.method_id
            code_hash = next(h for i, h in unused[method_id] if i == out.backup_code_used)
            claim = (method_id, "backup", code_hash.hex())
        else:
            return ClaimResult.OK  # a bypass uses nothing farm-wide
        known = verdicts.known.get(claim)
        if known is not None:
            return known
        if verdicts.final:
            return ClaimResult.UNREACHABLE
        verdicts.wanted.append(claim)
        return ClaimResult.OK  # tentative: this pass is rolled back

    def _claim(
        self, cur: Any, user: CachedUser, out: Outcome, now: float, pending: Pending | None
    ) -> bool:
        """Store what the acceptance used up; False if someone else used it first."""
        if out.method_state is not None:
            method_id, new = out.method_state
            moves = _moves(_kind(user, method_id))
            row = {"mid": method_id, "v": getattr(new, moves)}
            if pending is not None:
                # The cache is exact: the claim will apply (checked in ``AuthState.flush``).
                pending.forward[moves].append(row)
                return True
            return self.state.sql.forward[moves].run(cur, **row) == 1
        if out.backup_code_used is not None:
            return self.state.sql.claim_backup.run(cur, bid=out.backup_code_used, now=now) == 1
        return True


TELLS_WHO_EXISTS = frozenset(
    {Reason.UNKNOWN_USER, Reason.DISABLED, Reason.NO_METHOD, Reason.PUSH_UNAVAILABLE}
) | {Reason.WRONG_PIN, Reason.PIN_NOT_SET}
"""Refusals a known user's wrong code never gets: they would tell a caller that checked no
first factor whether the user exists, is disabled, has a method, a phone or a PIN."""
_NOBODY = Method("-", MethodKind.TOTP, bytes(20))


def _neutral(d: Decision, code: str) -> Decision:
    """What a known user's wrong code gets, in place of an answer that tells who exists."""
    if d.reason not in TELLS_WHO_EXISTS:
        return d
    reason = Reason.WRONG_CODE if normalize_code(code).isdigit() else Reason.MALFORMED
    return Decision(False, reason)


def _spend(code: str, now: float, policy: VerifyPolicy) -> None:
    """The work of checking a code against a user's app, for a user who does not exist."""
    decide(
        code,
        now,
        state=UserState(),
        methods=[_NOBODY],
        method_states={},
        unused_backup_codes={},
        pepper=b"",
        policy=policy,
    )


def _kind(user: CachedUser, method_id: str) -> str:
    """The kind of one of the user's methods."""
    for m in user.methods:
        if m.id == method_id:
            return m.kind
    raise KeyError(method_id)


_LOCKED, _PENDING, _SKIPPED = Reason.LOCKED, Reason.PENDING, Reason.SKIPPED
_PIN_NEEDED = Reason.PIN_NEEDED
"""Looked up once (``Reason.X`` is a slow attribute hook on CPython 3.11)."""
_TEXT = {r: r.value for r in Reason}
"""A reason's text for the audit row (``Reason.value`` is a Python-level property)."""


def _moves(kind: str) -> str:
    """The state field an acceptance of this method kind moves forward."""
    moves = KINDS[kind].moves
    assert moves is not None, f"method kind {kind} keeps no state to move"
    return moves
