"""Policy rules are configuration: a subordinate that replays the master's change records has
the same rules in the same order (adds, moves, removals), a replay changes nothing, and a
re-bootstrap from the master's snapshot brings them."""

from __future__ import annotations

from pathlib import Path

from openmfa.core.policy import Rule
from openmfa.farm import membership
from openmfa.farm.feed import changes_since, make_snapshot, open_snapshot
from openmfa.farm.follower import apply_changes, resync
from openmfa.node.policy_rules import PolicyRules
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config


def _rules(store: Store) -> list[Rule]:
    return PolicyRules(store).all()


def test_a_subordinate_replays_the_rules_in_order(tmp_path: Path) -> None:
    config = make_config()
    master = Store.create(DataDir(tmp_path / "master"), config)
    sub = Store.create(DataDir(tmp_path / "sub"), config)
    sub.box = master.box
    try:
        rules = PolicyRules(master)
        rules.add(Rule("vpn", channels=("radius",), clients=("vpn",), methods=("push",)))
        rules.add(Rule("office", networks=("10.0.0.0/8",), second_factor="skip"), position=1)
        rules.add(Rule("strict", groups=("admins",), lockout_threshold=3))
        rows = changes_since(master, 0)
        assert apply_changes(sub, rows) == len(rows)
        assert apply_changes(sub, rows) == 0
        assert _rules(sub) == _rules(master)
        assert [r.name for r in _rules(sub)] == ["office", "vpn", "strict"]
        seq = rows[-1]["seq"]
        rules.move("strict", 1)
        rules.remove("vpn")
        apply_changes(sub, changes_since(master, seq))
        assert [r.name for r in _rules(sub)] == ["strict", "office"]
        assert _rules(sub) == _rules(master)
        assert _rules(sub)[0].lockout_threshold == 3
    finally:
        sub.close()
        master.close()


def test_a_re_bootstrap_brings_the_master_s_rules(tmp_path: Path) -> None:
    config = make_config()
    master = Store.create(DataDir(tmp_path / "master"), config)
    try:
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
            PolicyRules(master).add(Rule("office", networks=("10.0.0.0/8",), methods=("totp",)))
            key_file, data = open_snapshot(make_snapshot(master, "f1", bytes(32)), "f1", bytes(32))
            resync(sub, key_file, data)
            assert [r.name for r in _rules(sub)] == ["office"]
        finally:
            sub.close()
    finally:
        master.close()
