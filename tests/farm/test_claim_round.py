"""A subordinate's batch: its codes claimed at the master once per batch, and never while the
node's write lock (or a write transaction) is held."""

from __future__ import annotations

import threading
import time

from openmfa.config import Config
from openmfa.core.totp import totp
from openmfa.core.verification import Decision, Reason
from openmfa.farm.claim_round import ClaimRound
from openmfa.node import audit
from openmfa.node.authenticator import Attempt, Authenticator, Claim, ClaimResult
from openmfa.store.database import Store
from tests.node.test_authenticator import KEY, POLICY, setup_user


class Master:
    """The master's side, in memory; notes whether this node's write lock was free."""

    def __init__(self, store: Store, answer: ClaimResult = ClaimResult.OK) -> None:
        self.store = store
        self.answer = answer
        self.fail_closed = False
        self.rounds: list[list[Claim]] = []
        self.lock_was_free: list[bool] = []

    def claim(self, method_id: str, kind: str, value: int | str) -> ClaimResult:
        return self.claim_many([(method_id, kind, value)])[0]

    def claim_many(self, claims: list[Claim]) -> list[ClaimResult]:
        self.rounds.append(list(claims))
        self.lock_was_free.append(self._lock_free())
        return [ClaimResult.OK if c[1] == "failure" else self.answer for c in claims]

    def _lock_free(self) -> bool:
        """From another thread: could a writer take this node's write lock now?"""
        if not self.store.is_sqlite:
            return True  # PostgreSQL takes row locks itself; no process-wide lock to hold
        free: list[bool] = []

        def probe() -> None:
            lock = self.store.write_lock._lock  # type: ignore[attr-defined]
            got = lock.acquire(blocking=False)
            free.append(got)
            if got:
                lock.release()

        t = threading.Thread(target=probe)
        t.start()
        t.join()
        return free[0]

    def close(self) -> None:
        pass


def run(auth: Authenticator, *attempts: Attempt, now: float) -> list[Decision]:
    out = auth.run(list(attempts), now=now)
    assert all(isinstance(d, Decision) for d in out)
    return out  # type: ignore[return-value]


def test_an_acceptance_is_claimed_once_and_outside_the_lock(store: Store, config: Config) -> None:
    method_id = setup_user(store, config)
    master = Master(store)
    auth = Authenticator(store, POLICY, round=ClaimRound(master))
    try:
        now = time.time()
        (d,) = run(auth, Attempt("alice", totp(KEY, now)), now=now)
        assert d.accepted
        assert master.rounds == [[(method_id, "totp", int(now // 30))]]
        assert master.lock_was_free == [True]
        (event,) = [e for e in audit.query(store, user="alice") if e.action == "authenticate"]
        assert event.detail == "claimed at the master"
    finally:
        auth.close()


def test_used_elsewhere_is_a_replay_and_its_failure_counts_at_the_master_after_commit(
    store: Store, config: Config
) -> None:
    """The second pass turns the acceptance into a replay, which is a new failure: it is sent
    after the commit (before, it was sent with the write lock held)."""
    setup_user(store, config)
    master = Master(store, answer=ClaimResult.USED)
    auth = Authenticator(store, POLICY, round=ClaimRound(master))
    try:
        now = time.time()
        (d,) = run(auth, Attempt("alice", totp(KEY, now)), now=now)
        assert d.reason == Reason.REPLAY
        assert [c[1] for c in master.rounds[-1]] == ["failure"]
        assert master.lock_was_free == [True, True]
        (event,) = [e for e in audit.query(store, user="alice") if e.action == "authenticate"]
        assert event.detail == "the master has seen this code on another node"
    finally:
        auth.close()


def test_a_batch_of_wrong_codes_is_decided_once(store: Store, config: Config) -> None:
    """Failures need no word from the master before the commit: one pass, then one request."""
    setup_user(store, config)
    master = Master(store)
    auth = Authenticator(store, POLICY, round=ClaimRound(master))
    passes = []
    real = auth.decide

    def counted(*args: object, **kwargs: object) -> list[Decision]:
        passes.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type, return-value]

    auth.decide = counted  # type: ignore[method-assign]
    try:
        now = time.time()
        out = run(auth, Attempt("alice", "000000"), Attempt("alice", "000001"), now=now)
        assert [d.reason for d in out] == [Reason.WRONG_CODE, Reason.WRONG_CODE]
        assert len(passes) == 1
        assert [[c[1:] for c in r] for r in master.rounds] == [[("failure", 1), ("failure", 2)]]
        assert master.lock_was_free == [True]
    finally:
        auth.close()


def test_an_unreachable_master_with_fail_closed_refuses(store: Store, config: Config) -> None:
    setup_user(store, config)
    master = Master(store, answer=ClaimResult.UNREACHABLE)
    master.fail_closed = True
    auth = Authenticator(store, POLICY, round=ClaimRound(master))
    try:
        now = time.time()
        (d,) = run(auth, Attempt("alice", totp(KEY, now)), now=now)
        assert d.reason == Reason.MASTER_UNREACHABLE
        (event,) = [e for e in audit.query(store, user="alice") if e.action == "authenticate"]
        assert event.detail == "master unreachable: refused (fail closed)"
    finally:
        auth.close()
