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


def test_a_rule_added_on_the_master_applies_on_a_subordinate_once_replayed(
    tmp_path: Path,
) -> None:
    """The subordinate's running authenticator follows the replayed records: the next request
    after the replay is decided under the master's new rule (no restart, no reload)."""
    from openmfa.core.verification import Decision, Reason, VerifyPolicy
    from openmfa.node.accounts import Accounts
    from openmfa.node.authenticator import Attempt, Authenticator

    config = make_config()
    master = Store.create(DataDir(tmp_path / "master"), config)
    sub = Store.create(DataDir(tmp_path / "sub"), config)
    sub.box = master.box
    try:
        accounts = Accounts(master, config)
        accounts.add_user("alice")
        accounts.enroll("alice", "totp", secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
        apply_changes(sub, changes_since(master, 0))
        auth = Authenticator(sub, VerifyPolicy())
        inside = Attempt("alice", "", channel="sdk", network="10.1.2.3", skippable=True)
        (d,) = auth.run([inside])
        assert isinstance(d, Decision) and not d.accepted
        seq = changes_since(master, 0)[-1]["seq"]
        PolicyRules(master).add(Rule("office", networks=("10.0.0.0/8",), second_factor="skip"))
        apply_changes(sub, changes_since(master, seq))
        (d,) = auth.run([inside])
        assert isinstance(d, Decision) and d.accepted and d.reason is Reason.SKIPPED
        auth.close()
    finally:
        sub.close()
        master.close()
