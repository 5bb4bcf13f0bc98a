"""Replication pieces on a real store (SQLite and PostgreSQL): apply, tokens, snapshots."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from openmfa.config import Config
from openmfa.errors import FormatTooNew, InvalidInput, NotMaster, OpenMfaError, Unauthorized
from openmfa.farm import membership, state_push
from openmfa.farm.feed import (
    changes_since,
    make_snapshot,
    oldest_change,
    open_snapshot,
    prune_changes,
)
from openmfa.farm.follower import apply_changes, resync
from openmfa.farm.signing import SignatureCheck, sign
from openmfa.farm.state_push import StateJournal
from openmfa.node.accounts import Accounts, Actor
from openmfa.node.portal import PortalTokens
from openmfa.node.portal_methods import PortalMethods
from openmfa.store import tables as t
from openmfa.store.database import READS_FORMATS, DataDir, Store
from tests.conftest import make_config

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_changes_replay_on_a_copy_and_are_idempotent(
    store: Store, config: Config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    acc = Accounts(store, config)
    acc.add_user("alice", email="a@example.org")
    app = acc.enroll("alice", "totp", secret=SECRET).method
    PortalMethods(acc, PortalTokens(store, config), config).rename(
        "alice", app.id, "Work phone", Actor()
    )
    acc.add_user("bob")
    acc.delete_user("bob")
    rows = changes_since(store, 0)
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    # A second data set (a subordinate: it holds the master's data key, the snapshot brings it).
    dd = DataDir(tmp_path_factory.mktemp("copy"))
    copy = Store.create(dd, make_config())
    copy.box = store.box
    try:
        assert apply_changes(copy, rows) == len(rows)
        assert apply_changes(copy, rows) == 0  # seen before: nothing happens
        users = {u.name: u for u in Accounts(copy, config).list_users()}
        assert set(users) == {"alice"} and users["alice"].email == "a@example.org"
        methods = Accounts(copy, config).list_methods("alice")
        assert [(m.kind, m.label) for m in methods] == [("totp", "Work phone")]
        newer = [{**rows[-1], "seq": rows[-1]["seq"] + 1, "format": READS_FORMATS[1] + 1}]
        with pytest.raises(FormatTooNew, match="upgrade this node"):
            apply_changes(copy, newer)
        assert changes_since(copy, 0)[-1]["seq"] == rows[-1]["seq"]  # nothing half-applied
    finally:
        copy.close()


def test_a_subordinate_refuses_local_writes(store: Store, config: Config) -> None:
    m = membership.Membership("f1", membership.SUBORDINATE, 1, "http://master:8480", bytes(32))
    with store.write() as conn:
        membership.save(store, conn, m)
    assert membership.load(store) == m
    with pytest.raises(NotMaster, match="http://master:8480"):
        Accounts(store, config).add_user("carol")


def test_join_tokens() -> None:
    m = membership.new_farm("http://a:8480")
    assert membership.parse_token(m.join_token()) == (m.farm_id, m.key)
    for bad in ("", "omfa-join-", "omfa-join-!!!", "omfa_abc", m.join_token()[:-4]):
        with pytest.raises(InvalidInput, match="join token"):
            membership.parse_token(bad)


def test_snapshot_opens_only_with_its_farm_key(store: Store) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("snapshots copy the SQLite data file; PostgreSQL nodes share a database")
    sealed = make_snapshot(store, "f1", bytes(32))
    key_file, data = open_snapshot(sealed, "f1", bytes(32))
    assert key_file == store.data_dir.key_file.read_bytes() and data.startswith(b"SQLite format 3")
    assert key_file not in sealed
    for farm_id, key in (("f1", bytes([1]) * 32), ("f2", bytes(32))):
        with pytest.raises(InvalidInput, match="does not open"):
            open_snapshot(sealed, farm_id, key)


@pytest.mark.parametrize(
    "change",
    ["method", "target", "body", "time", "node"],
)
def test_signature_covers_every_part(change: str) -> None:
    key, check = bytes(32), SignatureCheck(bytes(32))
    headers = sign(key, "b", "GET", "/v1/farm/changes?since=1", b"", now=100.0)
    method, target, body, now = "GET", "/v1/farm/changes?since=1", b"", 100.0
    if change == "method":
        method = "POST"
    elif change == "target":
        target = "/v1/farm/changes?since=0"
    elif change == "body":
        body = b"x"
    elif change == "time":
        now = 100.0 + 61
    else:
        headers = {**headers, "x-omfa-node": "evil"}
    with pytest.raises(Unauthorized):
        check.verify(headers, method, target, body, now=now)
    assert (
        check.verify(sign(key, "b", "GET", "/x", b"", now=100.0), "GET", "/x", b"", now=100.0)
        == "b"
    )


def test_resync_replaces_configuration_and_keeps_state_moving_forward(
    store: Store, config: Config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("a re-bootstrap installs a SQLite snapshot; PostgreSQL nodes share a database")
    acc = Accounts(store, config)
    acc.add_user("alice")
    totp_id = acc.enroll("alice", "totp", secret=SECRET).method.id
    acc.add_user("gone")
    # The subordinate: a copy of the master's data file as of now (what `farm join` installs).
    key_file, data = open_snapshot(make_snapshot(store, "f1", bytes(32)), "f1", bytes(32))
    dd = DataDir(tmp_path_factory.mktemp("sub"))
    dd.key_file.write_bytes(key_file)
    dd.data_file.write_bytes(data)
    sub = Store.open(dd)
    try:
        m = membership.Membership("f1", membership.SUBORDINATE, 3, "http://m:1", bytes(32), "s")
        with sub.write() as conn:
            membership.save(sub, conn, m)
            # This node accepted a TOTP step the master never heard of (master unreachable).
            conn.execute(
                t.method_state.update()
                .where(t.method_state.c.method_id == totp_id)
                .values(last_step=10**9)
            )
        # Meanwhile the master moves on, beyond what it keeps.
        acc.delete_user("gone")
        for i in range(5):
            acc.add_user(f"new{i}")
        removed = prune_changes(store, 2)
        assert removed > 0 and oldest_change(store) > changes_since(sub, 0)[-1]["seq"] + 1
        master_seq = changes_since(store, 0)[-1]["seq"]
        key_file, data = open_snapshot(make_snapshot(store, "f1", bytes(32)), "f1", bytes(32))

        assert resync(sub, key_file, data) == master_seq
        names = {u.name for u in Accounts(sub, config).list_users()}
        assert names == {"alice", "new0", "new1", "new2", "new3", "new4"}
        with sub.read() as conn:
            step = conn.scalar(
                select(t.method_state.c.last_step).where(t.method_state.c.method_id == totp_id)
            )
        assert step == 10**9, "a step this node used stays used after the re-bootstrap"
        assert membership.load(sub) == m, "this node's own membership stays"
        assert [r["seq"] for r in changes_since(sub, 0)] == [
            r["seq"] for r in changes_since(store, 0)
        ]
        with pytest.raises(OpenMfaError, match="another data key"):
            resync(sub, b"not the key file", data)
    finally:
        sub.close()


def test_state_journal_hands_out_each_advance_once_and_restarts_cleanly(
    store: Store, config: Config
) -> None:
    journal = StateJournal()
    first = journal.since("", 0)
    assert first == {"token": journal.token, "position": 0, "rows": []}
    journal.note([("m1", "hotp", 5), ("m2", "totp", 100)])
    assert journal.news(journal.token, 0) and not journal.news(journal.token, 2)
    got = journal.since(journal.token, 0)
    assert got["rows"] == [["m1", "hotp", 5], ["m2", "totp", 100]] and got["position"] == 2
    assert journal.since(journal.token, 2)["rows"] == []
    # A follower of another master process (a restart) starts from now, with nothing replayed.
    assert journal.since("other", 0) == {"token": journal.token, "position": 2, "rows": []}

    # A node is not sent its own claims back (they raced its own decision into a false
    # replay), but its position moves past them; every other node gets them.
    journal.note([("m3", "totp", 7)], "node-b")
    journal.note([("m4", "totp", 8)], "node-c")
    assert journal.news(journal.token, 3, "node-b") and not journal.news(journal.token, 3, "node-c")
    own = journal.since(journal.token, 2, "node-b")
    assert own == {"token": journal.token, "position": 4, "rows": [["m4", "totp", 8]]}
    other = journal.since(journal.token, 2, "node-c")
    assert other["rows"] == [["m3", "totp", 7]] and other["position"] == 4
    assert journal.since(journal.token, 3, "node-c") == {
        "token": journal.token,
        "position": 4,
        "rows": [],
    }

    # Merging never moves a counter or step back.
    acc = Accounts(store, config)
    acc.add_user("hank")
    mid = acc.enroll("hank", "hotp", secret=SECRET).method.id
    state_push.merge(store, [[mid, "hotp", 7]])
    state_push.merge(store, [[mid, "hotp", 3], ["no-such-method", "hotp", 9]])
    with store.read() as conn:
        counter = conn.scalar(
            select(t.method_state.c.counter).where(t.method_state.c.method_id == mid)
        )
    assert counter == 7
