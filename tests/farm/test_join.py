"""Joining a farm and changing who is in it, on real data directories (SQLite: a replicating
farm; a shared-database farm is only made, on the same store kinds). Joining a live master (a
snapshot over HTTP) is tests/e2e/test_farm.py's part; here the master is never reached, so every
refusal is seen before or at that point."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openmfa.errors import Conflict, InvalidInput, NotMaster, PeerError
from openmfa.farm import join, membership
from openmfa.store.backups import Backups
from openmfa.store.changes import Change, ChangeWriter
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config

NOWHERE = "http://127.0.0.1:9"
"""A URL where no node answers (the discard port, closed on a test host)."""


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Store]:
    store = Store.create(DataDir(tmp_path / "node"), make_config())
    try:
        yield store
    finally:
        store.close()


def test_a_new_farm_has_this_node_as_master_and_only_member(node: Store) -> None:
    m = join.make_farm(node, NOWHERE + "/a")
    assert m.is_master and m.epoch == 1 and m.master_url == m.self_url == NOWHERE + "/a"
    assert membership.load(node) == m
    assert membership.members(node) == {node.node_name: NOWHERE + "/a"}
    assert membership.parse_token(m.join_token()) == (m.farm_id, m.key)
    with pytest.raises(Conflict, match="in a farm already"):
        join.make_farm(node, NOWHERE + "/a")


def test_a_shared_farm_is_made_by_its_first_node_and_joined_by_the_others(node: Store) -> None:
    first = join.join_shared(node, NOWHERE + "/a")
    assert first.made and first.count == 1 and first.membership.shared
    again = join.join_shared(node, NOWHERE + "/a")  # the same node again: still one
    assert not again.made and again.count == 1
    assert again.membership.farm_id == first.membership.farm_id


def test_a_replicating_farm_is_not_joined_as_a_shared_one(node: Store) -> None:
    join.make_farm(node, NOWHERE + "/a")
    with pytest.raises(Conflict, match="belongs to a replicating farm"):
        join.join_shared(node, NOWHERE + "/a")


def test_a_token_that_is_not_one_is_refused_before_anything_changes(tmp_path: Path) -> None:
    said: list[str] = []
    with pytest.raises(InvalidInput, match="this is not a farm join token"):
        join.join(tmp_path / "new", NOWHERE, "omfa-join-garbage", None, said.append)
    assert not (tmp_path / "new").exists() and said == []


def test_a_node_on_postgresql_is_told_to_use_farm_init(tmp_path: Path) -> None:
    dd = tmp_path / "pg"
    dd.mkdir()
    (dd / "server.toml").write_text('[store]\nurl = "postgresql://db/openmfa"\n')
    with pytest.raises(InvalidInput, match="share one database and need no change feed"):
        join.join(dd, NOWHERE, "omfa-join-x", None, print)


def test_a_node_of_another_farm_is_refused_and_keeps_its_data(tmp_path: Path) -> None:
    other = Store.create(DataDir(tmp_path / "other"), make_config())
    try:
        token = join.make_farm(other, NOWHERE + "/other").join_token()
    finally:
        other.close()
    mine = Store.create(DataDir(tmp_path / "mine"), make_config())
    try:
        m = join.make_farm(mine, NOWHERE + "/mine")
    finally:
        mine.close()
    said: list[str] = []
    with pytest.raises(Conflict, match=f"this node is in farm {m.farm_id} already"):
        join.join(tmp_path / "mine", NOWHERE, token, None, said.append)
    assert said == []
    assert Backups(DataDir(tmp_path / "mine"), make_config()).all() == []


def test_a_node_joining_its_own_farm_again_is_backed_up_first(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "sub")
    store = Store.create(dd, make_config())
    try:
        m = join.make_farm(store, NOWHERE + "/sub")
    finally:
        store.close()
    said: list[str] = []
    with pytest.raises(PeerError, match=f"could not reach the master at {NOWHERE}"):
        join.join(dd.root, NOWHERE, m.join_token(), None, said.append)
    [saved] = Backups(dd, make_config()).all()
    assert said == [f"backed up this node's own data as {saved.id}"]
    store = Store.open(dd, make_config())  # the master was not reached: nothing replaced
    try:
        assert membership.load(store) == m
    finally:
        store.close()


def test_promote_refuses_outside_a_replicating_farm(node: Store) -> None:
    with pytest.raises(InvalidInput, match="not in a farm"):
        join.promote(node, "node-b", force=False, timeout=1)
    join.join_shared(node, NOWHERE + "/a")
    with pytest.raises(InvalidInput, match="shared-database farm has no master"):
        join.promote(node, "node-b", force=False, timeout=1)


def test_a_forced_promotion_makes_this_subordinate_lead_a_new_epoch(node: Store) -> None:
    sub = membership.Membership(
        "f1", membership.SUBORDINATE, 3, NOWHERE + "/gone", bytes(32), NOWHERE + "/me"
    )
    ChangeWriter(node).commit([Change("farm.member", {"name": "node-c", "url": NOWHERE + "/c"})])
    with node.write() as conn:  # (a subordinate takes changes only from its master)
        membership.save(node, conn, sub)
    with pytest.raises(InvalidInput, match="--force promotes the node it runs on"):
        join.promote(node, "node-c", force=True, timeout=1)
    done = join.promote(node, node.node_name, force=True, timeout=1)
    assert done.membership.is_master and done.membership.epoch == 4
    assert done.membership.master_url == NOWHERE + "/me"
    assert membership.load(node) == done.membership
    assert done.told == {"node-c": False}  # not reached: it finds the new master itself


def test_finalize_is_the_masters(node: Store) -> None:
    with pytest.raises(NotMaster, match="on the farm's master"):
        join.finalize_farm(node)
    join.make_farm(node, NOWHERE + "/a")
    before, after = join.finalize_farm(node)
    assert before == after == node.data_format()  # a new farm is at this release's format


def test_forgetting_a_component_needs_every_node_to_answer(node: Store) -> None:
    with pytest.raises(InvalidInput, match="not in a farm"):
        join.forget_component(node, "web-1")
    join.make_farm(node, NOWHERE + "/a")
    with pytest.raises(Conflict, match=f"nodes {node.node_name} did not answer"):
        join.forget_component(node, "web-1")
