"""Groups are data: a subordinate that replays the master's change records knows the same
people's groups of both origins, a removal and a deleted user's groups go on every node, and a
re-bootstrap from the master's snapshot brings them."""

from __future__ import annotations

from pathlib import Path

from openmfa.config import Config
from openmfa.farm import membership
from openmfa.farm.feed import changes_since, make_snapshot, open_snapshot
from openmfa.farm.follower import apply_changes, resync
from openmfa.node.accounts import Accounts
from openmfa.node.groups import Groups, groups_change
from openmfa.store.changes import ChangeWriter
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config


def _views(store: Store, config: Config) -> dict[str, tuple[list[str], list[str]]]:
    return {
        u.name: (u.manual_groups, u.directory_groups) for u in Accounts(store, config).list_users()
    }


def test_a_subordinate_replays_groups_of_both_origins(tmp_path: Path) -> None:
    config = make_config()
    master = Store.create(DataDir(tmp_path / "master"), config)
    sub = Store.create(DataDir(tmp_path / "sub"), config)
    sub.box = master.box  # a subordinate holds the master's data key (the snapshot brings it)
    try:
        accounts = Accounts(master, config)
        groups = Groups(master, accounts)
        accounts.add_user("alice")
        accounts.add_user("bob")
        groups.add("alice", "vpn")
        groups.add("bob", "admins")
        ChangeWriter(master).commit(
            [groups_change(accounts.user_id("alice"), "directory", ["staff", "vpn"], [])]
        )
        rows = changes_since(master, 0)
        assert apply_changes(sub, rows) == len(rows)
        assert apply_changes(sub, rows) == 0  # seen before: nothing happens
        assert _views(sub, config) == {
            "alice": (["vpn"], ["staff", "vpn"]),
            "bob": (["admins"], []),
        }
        seq = rows[-1]["seq"]
        groups.remove("alice", "vpn")  # by hand only: the directory's vpn stays
        accounts.delete_user("bob")
        accounts.add_user("carol")  # may get bob's id again: none of his groups
        apply_changes(sub, changes_since(master, seq))
        assert (
            _views(sub, config)
            == _views(master, config)
            == {
                "alice": ([], ["staff", "vpn"]),
                "carol": ([], []),
            }
        )
        assert Accounts(sub, config).get_user("alice").groups == ["staff", "vpn"]
    finally:
        sub.close()
        master.close()


def test_a_re_bootstrap_brings_the_master_s_groups(tmp_path: Path) -> None:
    config = make_config()
    master = Store.create(DataDir(tmp_path / "master"), config)
    try:
        accounts = Accounts(master, config)
        accounts.add_user("alice")
        key_file, data = open_snapshot(make_snapshot(master, "f1", bytes(32)), "f1", bytes(32))
        (tmp_path / "sub").mkdir()
        dd = DataDir(tmp_path / "sub")
        dd.key_file.write_bytes(key_file)
        dd.data_file.write_bytes(data)
        sub = Store.open(dd)
        try:
            m = membership.Membership("f1", membership.SUBORDINATE, 3, "http://m:1", bytes(32), "s")
            with sub.write() as conn:
                membership.save(sub, conn, m)
            Groups(master, accounts).add("alice", "vpn")
            key_file, data = open_snapshot(make_snapshot(master, "f1", bytes(32)), "f1", bytes(32))
            resync(sub, key_file, data)
            assert Accounts(sub, config).get_user("alice").manual_groups == ["vpn"]
        finally:
            sub.close()
    finally:
        master.close()
