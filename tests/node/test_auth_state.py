"""The authentication state of a data file as the authenticator keeps it (``node.auth_state``),
against a real store: the "only ever forward" updates, the configuration cache and the change
records that empty it, the state cache SQLite keeps exactly, and a batch's flush."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select, update

from openmfa.config import Config
from openmfa.core import backup_codes
from openmfa.core.lockout import UserState
from openmfa.core.verification import MethodKind, MethodState
from openmfa.errors import StaleState
from openmfa.node import auth_state
from openmfa.node.accounts import Accounts
from openmfa.node.auth_state import AuthState, Discard, Pending, forward
from openmfa.store import tables as t
from openmfa.store.database import DataDir, Store
from openmfa.store.prepared import dbapi_cursor
from tests.conftest import make_config

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A node on SQLite, where the state cache is kept exactly (``PRAGMA data_version``)."""
    s = Store.create(DataDir(tmp_path / "sqlite"), make_config())
    try:
        yield s
    finally:
        s.close()


def method_state(store: Store, method_id: str) -> tuple[int, int]:
    ms = t.method_state
    with store.read() as conn:
        row = conn.execute(
            select(ms.c.last_step, ms.c.counter).where(ms.c.method_id == method_id)
        ).one()
    return int(row[0]), int(row[1])


def test_forward_moves_each_kind_only_forward(store: Store, config: Config) -> None:
    acc = Accounts(store, config)
    acc.add_user("alice")
    totp_id = acc.enroll("alice", "totp", secret=SECRET).method.id
    hotp_id = acc.enroll("alice", "hotp", secret=SECRET).method.id
    backup = acc.enroll("alice", "backup-codes")
    assert backup.backup_codes
    code = backup.backup_codes[0]
    code_hash = backup_codes.hash_code(store.box.pepper, code).hex()
    with store.write() as conn:
        steps = [forward(conn, totp_id, "totp", v) for v in (10, 10, 9, 11)]
        counters = [forward(conn, hotp_id, "hotp", v) for v in (3, 3, 2, 4)]
        used = [forward(conn, backup.method.id, "backup-codes", code_hash) for _ in range(2)]
        assert not forward(conn, backup.method.id, "backup-codes", "00" * 32)  # not a code
        assert not forward(conn, "nothing", "totp", 99)
    assert steps == [True, False, False, True] and method_state(store, totp_id)[0] == 11
    assert counters == [True, False, False, True] and method_state(store, hotp_id)[1] == 4
    assert used == [True, False]
    bc = t.backup_codes
    with store.read() as conn:
        left = conn.scalar(
            select(func.count()).where(bc.c.method_id == backup.method.id, bc.c.used_at.is_(None))
        )
    assert left == len(backup.backup_codes) - 1


def test_the_configuration_cache_holds_until_a_change_names_the_user(
    store: Store, config: Config
) -> None:
    acc = Accounts(store, config)
    acc.add_user("alice")
    acc.add_user("bob")
    totp_id = acc.enroll("alice", "totp", secret=SECRET).method.id
    state = AuthState(store)

    def look(name: str) -> auth_state.CachedUser | None:
        with state.transaction() as conn:
            cur = dbapi_cursor(conn)
            state.refresh(cur)
            return state.user(cur, name)

    try:
        alice = look("alice")
        assert alice is not None and alice.enabled and not alice.has_backup
        assert [(m.id, m.kind, m.key) for m in alice.methods] == [
            (totp_id, MethodKind.TOTP, base64.b32decode(SECRET))
        ]
        assert look("alice") is alice  # nothing changed: the cached one
        assert look("nobody") is None
        acc.enroll("bob", "backup-codes")  # bob's change: alice stays cached
        assert look("alice") is alice
        bob = look("bob")
        assert bob is not None and bob.has_backup
        acc.enroll("alice", "backup-codes")
        alice = look("alice")
        assert alice is not None and alice.has_backup
        acc.update_user("alice", {"enabled": False})
        alice = look("alice")
        assert alice is not None and not alice.enabled
        acc.remove_method("alice", totp_id)
        alice = look("alice")
        assert alice is not None and [m.kind for m in alice.methods] == [MethodKind.BACKUP_CODES]
        acc.add_user("nobody")  # a user added after a look that found none
        found = look("nobody")
        assert found is not None and found.methods == []
    finally:
        state.close()


def test_a_large_gap_or_missing_records_empty_the_whole_cache(
    store: Store, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    acc = Accounts(store, config)
    for name in ("alice", "bob"):
        acc.add_user(name)
    state = AuthState(store)

    def look() -> tuple[int, auth_state.CachedUser | None]:
        with state.transaction() as conn:
            cur = dbapi_cursor(conn)
            generation = state.refresh(cur)
            return generation, state.user(cur, "alice")

    try:
        first_gen, alice = look()
        acc.update_user("bob", {"display_name": "Bob"})
        second_gen, same = look()
        assert second_gen == first_gen + 1 and same is alice  # one record, about bob
        monkeypatch.setattr(auth_state, "FORGET_ALL_AFTER", 2)
        for n in range(3):
            acc.update_user("bob", {"display_name": f"Bob {n}"})
        gen, after_gap = look()
        assert gen == second_gen + 3 and after_gap is not alice and after_gap == alice
        monkeypatch.undo()
        # Records pruned: the one after the cached generation is gone, so nothing is trusted.
        acc.update_user("bob", {"display_name": "Bob once"})
        acc.update_user("bob", {"display_name": "Bob twice"})
        with store.write() as conn:
            conn.execute(delete(t.changes).where(t.changes.c.seq <= gen + 1))
        last, after_prune = look()
        assert last == gen + 2 and after_prune is not after_gap and after_prune == alice
    finally:
        state.close()


def test_a_method_of_a_later_release_is_not_checked(store: Store, config: Config) -> None:
    """A kind this release does not know (mid-upgrade) is left out, not an error."""
    acc = Accounts(store, config)
    acc.add_user("alice")
    totp_id = acc.enroll("alice", "totp", secret=SECRET).method.id
    with store.write() as conn:
        conn.execute(
            insert(t.methods).values(
                id="later",
                user_id=acc.user_id("alice"),
                kind="quantum-token",
                label="",
                secret_enc=b"\x00" * 40,
                digits=6,
                period=30,
                algorithm="SHA1",
                created_at=0.0,
            )
        )
    state = AuthState(store)
    try:
        with state.transaction() as conn:
            user = state.user(dbapi_cursor(conn), "alice")
    finally:
        state.close()
    assert user is not None and [m.id for m in user.methods] == [totp_id]


def test_sqlite_state_is_cached_until_another_connection_commits(sqlite_store: Store) -> None:
    store = sqlite_store
    acc = Accounts(store, make_config())
    acc.add_user("alice")
    totp_id = acc.enroll("alice", "totp", secret=SECRET).method.id
    uid = acc.user_id("alice")
    state = AuthState(store)
    assert state.exact

    def read() -> auth_state.CachedState:
        with state.transaction() as conn:
            cur = dbapi_cursor(conn)
            state.check_states(cur)
            return state.state(cur, uid, exact=True)

    try:
        first = read()
        assert first.user == UserState() and first.methods == {totp_id: MethodState(-1, 0)}
        assert read() is first  # nobody else wrote: the cached state
        with store.write() as conn:  # another connection (the CLI, an admin request)
            conn.execute(
                update(t.user_state).where(t.user_state.c.user_id == uid).values(failures=2)
            )
        again = read()
        assert again is not first and again.user.failures == 2
        # Its own writes do not count as another's: the cache stays.
        with state.transaction() as conn:
            cur = dbapi_cursor(conn)
            state.check_states(cur)
            state.flush(cur, Pending(steps=[{"mid": totp_id, "v": 7}]))
        assert read() is again
        assert method_state(store, totp_id)[0] == 7
    finally:
        state.close()


def test_state_read_fresh_when_not_exact(store: Store, config: Config) -> None:
    acc = Accounts(store, config)
    acc.add_user("alice")
    uid = acc.user_id("alice")
    state = AuthState(store)
    try:
        with state.transaction() as conn:
            cur = dbapi_cursor(conn)
            first = state.state(cur, uid, exact=False)
            assert state.state(cur, uid, exact=False) is not first
            assert state.state(cur, 10_000, exact=False).user == UserState()  # no such user
    finally:
        state.close()


def test_a_flush_that_does_not_all_apply_is_rolled_back(sqlite_store: Store) -> None:
    """A batch's state writes (SQLite) go out together: if any claim finds its row moved on,
    the whole transaction is undone."""
    store = sqlite_store
    acc = Accounts(store, make_config())
    acc.add_user("alice")
    totp_id = acc.enroll("alice", "totp", secret=SECRET).method.id
    hotp_id = acc.enroll("alice", "hotp", secret=SECRET).method.id
    uid = acc.user_id("alice")
    state = AuthState(store)
    try:
        with state.transaction() as conn:
            state.flush(
                dbapi_cursor(conn),
                Pending(
                    steps=[{"mid": totp_id, "v": 5}],
                    counters=[{"mid": hotp_id, "v": 2}],
                    users=[{"uid": uid, "f": 1, "lu": None, "bu": 99.0}],
                ),
            )
        assert method_state(store, totp_id)[0] == 5 and method_state(store, hotp_id)[1] == 2
        pending = Pending(steps=[{"mid": totp_id, "v": 5}], counters=[{"mid": hotp_id, "v": 9}])
        assert pending.forward == {"last_step": pending.steps, "counter": pending.counters}
        with pytest.raises(StaleState), state.transaction() as conn:
            # the counter claim comes after the stale step: the step's failure stops the batch
            state.flush(dbapi_cursor(conn), pending)
        assert method_state(store, totp_id)[0] == 5 and method_state(store, hotp_id)[1] == 2
        with pytest.raises(StaleState), state.transaction() as conn:
            cur = dbapi_cursor(conn)
            state.sql.claim_counter.run(cur, mid=hotp_id, v=6)  # applied, then undone
            state.flush(cur, Pending(counters=[{"mid": hotp_id, "v": 6}]))
        assert method_state(store, hotp_id)[1] == 2
        us = t.user_state
        with store.read() as conn:
            row = conn.execute(
                select(us.c.failures, us.c.bypass_until).where(us.c.user_id == uid)
            ).one()
        assert tuple(row) == (1, 99.0)
    finally:
        state.close()


def test_discard_rolls_back_and_keeps_the_connection(store: Store, config: Config) -> None:
    acc = Accounts(store, config)
    acc.add_user("alice")
    totp_id = acc.enroll("alice", "totp", secret=SECRET).method.id
    state = AuthState(store)
    try:
        with pytest.raises(Discard), state.transaction() as conn:
            assert state.sql.claim_step.run(dbapi_cursor(conn), mid=totp_id, v=3) == 1
            kept = conn
            raise Discard
        assert method_state(store, totp_id)[0] == -1
        with state.transaction() as conn:
            assert state.sql.claim_step.run(dbapi_cursor(conn), mid=totp_id, v=4) == 1
            assert (conn is kept) == state.exact  # SQLite: the authenticator's own connection
        assert method_state(store, totp_id)[0] == 4
        with pytest.raises(RuntimeError), state.transaction() as conn:
            state.sql.claim_step.run(dbapi_cursor(conn), mid=totp_id, v=8)
            raise RuntimeError("a failure mid-batch")
        assert method_state(store, totp_id)[0] == 4
        with state.transaction() as conn:  # a connection that failed is not reused
            assert conn is not kept
    finally:
        state.close()


@pytest.mark.parametrize("n", [1, 3, 64, 77, 200])
def test_a_batch_of_audit_rows_is_written_whole_and_in_order(store: Store, n: int) -> None:
    """On SQLite the rows go out as multi-row inserts of 64, 32, ... 1 (``PreparedInsert``)."""
    state = AuthState(store)
    rows = [
        {
            "at": 1000.0 + i,
            "node": "n1",
            "action": "authenticate",
            "user_name": f"user{i}",
            "client": "radius:gw",
            "method_id": f"m{i}",
            "result": "accepted" if i % 2 else "rejected",
            "reason": "ok" if i % 2 else "wrong_code",
            "request_id": f"batch-{i}",
            "detail": "" if i % 3 else "wrong first factor",
            "source_enc": "" if i % 2 else f"sealed-{i}",
        }
        for i in range(n)
    ]
    try:
        with state.transaction() as conn:
            cur = dbapi_cursor(conn)
            state.sql.audit.many(cur, rows)
            cur.close()
    finally:
        state.close()
    a = t.audit
    with store.read() as conn:
        found = conn.execute(
            select(*(a.c[c] for c in t.AUDIT_COLUMNS))
            .where(a.c.request_id.like("batch-%"))
            .order_by(a.c.id)
        ).all()
    assert [dict(zip(t.AUDIT_COLUMNS, r, strict=True)) for r in found] == rows
