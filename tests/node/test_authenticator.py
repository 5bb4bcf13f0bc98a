from __future__ import annotations

import base64
import threading
import time

import pytest
from sqlalchemy import select

from openmfa.config import Config
from openmfa.core.hotp import hotp
from openmfa.core.lockout import LockoutPolicy
from openmfa.core.totp import totp
from openmfa.core.verification import Decision, Reason, VerifyPolicy
from openmfa.errors import StoreError
from openmfa.farm.claim_round import ClaimRound
from openmfa.node import audit
from openmfa.node.accounts import Accounts
from openmfa.node.authenticator import Attempt, Authenticator
from openmfa.node.master_claims import Claim, ClaimResult
from openmfa.store import tables as t
from openmfa.store.database import Store

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
KEY = base64.b32decode(SECRET)
POLICY = VerifyPolicy(lockout=LockoutPolicy(threshold=3, minutes=15))


def decide(auth: Authenticator, user: str, code: str, now: float | None = None) -> Decision:
    (d,) = auth.run([Attempt(user, code, request_id="r1")], now=now)
    assert isinstance(d, Decision)
    return d


def setup_user(store: Store, config: Config, kind: str = "totp") -> str:
    acc = Accounts(store, config)
    acc.add_user("alice")
    return acc.enroll("alice", kind, secret=SECRET).method.id


def test_accept_then_replay_and_audit_has_no_code(store: Store, config: Config) -> None:
    method_id = setup_user(store, config)
    auth = Authenticator(store, POLICY)
    now = time.time()
    code = totp(KEY, now)
    first = decide(auth, "alice", code, now)
    assert first.accepted and first.method_id == method_id
    # A second authenticator (another process) sees the stored step, not a cached one.
    second = decide(Authenticator(store, POLICY), "alice", code, now)
    assert second.reason == Reason.REPLAY
    events = audit.query(store, user="alice")
    auths = [e for e in events if e.action == "authenticate"]
    assert [(e.result, e.reason) for e in auths] == [("accepted", "ok"), ("rejected", "replay")]
    assert all(e.request_id == "r1" and e.node == store.node_name for e in auths)
    with store.read() as conn:
        dumped = repr(conn.execute(select(t.audit)).all())
    assert code not in dumped and SECRET not in dumped


def test_hotp_counter_persists_and_resync(store: Store, config: Config) -> None:
    method_id = setup_user(store, config, "hotp")
    auth = Authenticator(store, VerifyPolicy())
    assert decide(auth, "alice", hotp(KEY, 2)).accepted
    assert decide(auth, "alice", hotp(KEY, 1)).reason == Reason.WRONG_CODE  # behind the counter
    assert decide(auth, "alice", hotp(KEY, 2)).reason == Reason.WRONG_CODE  # used
    far = 50
    assert decide(auth, "alice", hotp(KEY, far)).reason == Reason.WRONG_CODE  # beyond look-ahead
    acc = Accounts(store, config)
    assert not acc.resync_hotp("alice", method_id, hotp(KEY, far), hotp(KEY, far + 2))
    assert acc.resync_hotp("alice", method_id, hotp(KEY, far), hotp(KEY, far + 1))
    assert decide(auth, "alice", hotp(KEY, far + 2)).accepted


def test_lockout_is_stored_audited_and_cleared_by_admin(store: Store, config: Config) -> None:
    setup_user(store, config)
    auth = Authenticator(store, POLICY)
    now = time.time()
    results = [decide(auth, "alice", "000000", now) for _ in range(3)]
    assert results[-1].locked_until is not None
    assert decide(auth, "alice", totp(KEY, now), now).reason == Reason.LOCKED
    assert Accounts(store, config).get_user("alice").locked_until is not None
    assert any(e.action == "lockout" for e in audit.query(store, user="alice"))
    Accounts(store, config).unlock("alice")
    assert decide(auth, "alice", totp(KEY, now), now).accepted


def test_bypass_once(store: Store, config: Config) -> None:
    setup_user(store, config)
    auth = Authenticator(store, POLICY)
    Accounts(store, config).grant_bypass("alice", 60)
    assert decide(auth, "alice", "").reason == Reason.BYPASS
    assert not decide(auth, "alice", "").accepted


def test_admin_changes_reach_a_long_lived_authenticator(store: Store, config: Config) -> None:
    method_id = setup_user(store, config)
    auth = Authenticator(store, POLICY)
    now = time.time()
    assert decide(auth, "alice", totp(KEY, now - 30), now).accepted  # warms the cache
    acc = Accounts(store, config)
    acc.update_user("alice", {"enabled": False})
    assert decide(auth, "alice", totp(KEY, now), now).reason == Reason.DISABLED
    acc.update_user("alice", {"enabled": True})
    acc.remove_method("alice", method_id)
    assert decide(auth, "alice", totp(KEY, now), now).reason == Reason.NO_METHOD
    acc.delete_user("alice")
    assert decide(auth, "alice", totp(KEY, now), now).reason == Reason.UNKNOWN_USER


def test_unknown_user(store: Store) -> None:
    assert decide(Authenticator(store, POLICY), "nobody", "123456").reason == Reason.UNKNOWN_USER


def test_concurrent_writers_accept_a_code_once(store: Store, config: Config) -> None:
    """Two authenticators (as two processes would) race on one code: exactly one wins."""
    setup_user(store, config)
    now = time.time()
    code = totp(KEY, now)
    for round_ in range(5):
        code = totp(KEY, now + 30 * round_)
        barrier = threading.Barrier(4)
        results: list[Decision] = []

        def one(
            code: str = code,
            at: float = now + 30 * round_,
            barrier: threading.Barrier = barrier,
            results: list[Decision] = results,
        ) -> None:
            auth = Authenticator(store, POLICY)
            barrier.wait()
            results.append(decide(auth, "alice", code, at))

        threads = [threading.Thread(target=one) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert sorted(r.accepted for r in results) == [False, False, False, True]
        assert {r.reason for r in results if not r.accepted} == {Reason.REPLAY}
        Accounts(store, config).unlock("alice")  # the replays count as failures


def test_long_lived_authenticators_see_each_others_state(store: Store, config: Config) -> None:
    """Cached state (SQLite) is dropped as soon as another connection commits."""
    setup_user(store, config)
    a, b = Authenticator(store, POLICY), Authenticator(store, POLICY)
    try:
        now = time.time()
        assert decide(a, "alice", "000000", now).reason == Reason.WRONG_CODE  # a caches state
        assert decide(b, "alice", "000001", now).reason == Reason.WRONG_CODE  # 2 failures
        code = totp(KEY, now)
        assert decide(b, "alice", code, now).accepted  # resets failures, uses the step
        assert decide(a, "alice", code, now).reason == Reason.REPLAY
        for wrong in ("000002", "000003"):
            decide(b, "alice", wrong, now)
        # a's own failure plus b's two failures after a's replay reach the threshold of 3.
        assert decide(a, "alice", totp(KEY, now + 30), now + 30).reason == Reason.LOCKED
    finally:
        a.close()
        b.close()


def test_state_written_behind_the_cache_rolls_the_batch_back(store: Store, config: Config) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL state is read fresh; nothing is cached")
    method_id = setup_user(store, config)
    auth = Authenticator(store, POLICY)
    try:
        now = time.time()
        decide(auth, "alice", "000000", now)  # state now cached
        # Write through the authenticator's own connection: data_version cannot see it.
        assert auth.state._conn is not None
        with auth.state._conn.begin():
            auth.state._conn.execute(
                t.method_state.update()
                .where(t.method_state.c.method_id == method_id)
                .values(last_step=int(now // 30) + 5)
            )
        with pytest.raises(StoreError):
            auth.run([Attempt("alice", totp(KEY, now))], now=now)
        accepted = [e for e in audit.query(store, user="alice") if e.result == "accepted"]
        assert accepted == []  # the failed batch left nothing behind
        assert decide(auth, "alice", totp(KEY, now), now).reason == Reason.REPLAY
    finally:
        auth.close()


class _Master:
    """A farm master's claims, kept in memory: each step is granted once."""

    fail_closed = False

    def close(self) -> None:
        pass

    def __init__(self) -> None:
        self.steps: dict[str, int] = {}
        self.asked: list[Claim] = []

    def claim(self, method_id: str, kind: str, value: int | str) -> ClaimResult:
        return self.claim_many([(method_id, kind, value)])[0]

    def claim_many(self, claims: list[Claim]) -> list[ClaimResult]:
        out = []
        for method_id, kind, value in claims:
            self.asked.append((method_id, kind, value))
            if kind != "totp":
                out.append(ClaimResult.OK)
            elif self.steps.get(method_id, -1) < int(value):
                self.steps[method_id] = int(value)
                out.append(ClaimResult.OK)
            else:
                out.append(ClaimResult.USED)
        return out


def test_a_batch_that_fails_after_the_master_granted_its_code_is_not_a_replay(
    store: Store, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit queue decides a failed batch again; the master's "ok" still holds then."""
    setup_user(store, config)
    master = _Master()
    auth = Authenticator(store, POLICY, round=ClaimRound(master))
    try:
        now = time.time()
        code = totp(KEY, now)
        real = auth.state.sql.audit.many
        calls = {"n": 0}

        def fails_once(*args: object, **kwargs: object) -> object:
            calls["n"] += 1
            if calls["n"] == 1:
                raise StoreError("disk I/O error")
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(auth.state.sql.audit, "many", fails_once)
        with pytest.raises(StoreError):
            auth.run([Attempt("alice", code)], now=now)
        assert len(master.asked) == 1  # granted at the master, not committed here
        again = decide(auth, "alice", code, now)
        assert again.accepted, again
        assert len(master.asked) == 1  # the grant was reused, not asked for again
        # Committed now: the same code is a replay on this node, and asked again, at the master.
        assert decide(auth, "alice", code, now).reason == Reason.REPLAY
        accepted = [e for e in audit.query(store, user="alice") if e.result == "accepted"]
        assert len(accepted) == 1
    finally:
        auth.close()
