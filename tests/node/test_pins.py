"""PINs (``node.pins``) and the PIN gate (``node.policy_enforce.pin_gate``) on both databases:
an attempt under a ``pin=required`` rule is answered ``pin_needed`` (nothing counted, nothing
audited) until its PIN was checked; a right PIN lets the code after it be tried, a wrong one is
counted and refused with no code evaluated (a right code is not used up), no PIN is
``pin_not_set``; where no PIN travels ``pin_elsewhere`` decides; a person under no such rule is
decided as before. PINs replicate (replay, a user's deletion, a re-bootstrap)."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from openmfa.config import Config
from openmfa.core.lockout import LockoutPolicy
from openmfa.core.policy import Rule
from openmfa.core.totp import totp
from openmfa.core.verification import Decision, Reason, VerifyPolicy
from openmfa.farm import membership
from openmfa.farm.feed import changes_since, make_snapshot, open_snapshot
from openmfa.farm.follower import apply_changes, resync
from openmfa.node import pins
from openmfa.node.accounts import Accounts
from openmfa.node.authenticator import Attempt, Authenticator
from openmfa.node.pins import Pins
from openmfa.node.policy_rules import PolicyRules
from openmfa.store import tables as t
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
KEY = base64.b32decode(SECRET)
POLICY = VerifyPolicy(lockout=LockoutPolicy(threshold=5, minutes=15))
SDK = Attempt("alice", "", channel="sdk", channel_client="app", skippable=True)


def one(auth: Authenticator, a: Attempt, now: float) -> Decision:
    (d,) = auth.run([a], now=now)
    assert isinstance(d, Decision)
    return d


def audited(store: Store) -> list[tuple[str, str]]:
    with store.read() as conn:
        return [
            (r.reason, r.detail)
            for r in conn.execute(
                select(t.audit.c.reason, t.audit.c.detail)
                .where(t.audit.c.action == "authenticate")
                .order_by(t.audit.c.id)
            )
        ]


def test_the_gate(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    accounts.enroll("alice", "totp", secret=SECRET)
    PolicyRules(store).add(Rule("pins", channels=("sdk",), pin="required"))
    assert Pins(store, accounts).set("alice", "4711").pin_set
    auth = Authenticator(store, POLICY)
    now = time.time()
    code = totp(KEY, now)
    typed = replace(SDK, code="4711" + code)
    assert one(auth, typed, now).reason is Reason.PIN_NEEDED
    assert audited(store) == []  # nothing said yet
    wrong = asyncio.run(pins.checked(store, replace(typed, code="4712" + code)))
    assert (wrong.pin, wrong.code) == ("wrong", "")
    d = one(auth, wrong, now)
    assert (d.accepted, d.reason) == (False, Reason.WRONG_PIN)
    assert accounts.get_user("alice").failures == 1
    right = asyncio.run(pins.checked(store, typed))
    assert (right.pin, right.code) == ("ok", code)
    d = one(auth, right, now)  # the code was not used up by the wrong PIN's attempt
    assert (d.accepted, d.reason) == (True, Reason.OK)
    alone = asyncio.run(pins.checked(store, replace(SDK, code=code)))
    assert alone.pin == "wrong"  # the code alone: its first 4 digits are no PIN
    elsewhere = replace(SDK, code="push", pin=pins.ELSEWHERE)
    assert one(auth, elsewhere, now).reason is Reason.METHOD_NOT_ALLOWED
    Pins(store, accounts).clear("alice")
    unset = asyncio.run(pins.checked(store, typed))
    assert unset.pin == "unset"
    assert one(auth, unset, now).reason is Reason.PIN_NOT_SET
    assert audited(store) == [
        ("wrong_pin", "wrong PIN (policy rule pins)"),
        ("ok", ""),
        (
            "method_not_allowed",
            "a PIN cannot travel here; refused by policy rule pins (pin-elsewhere)",
        ),
        ("pin_not_set", "no PIN set; policy rule pins requires one"),
    ]
    # Another channel: no rule, the code alone as before (the PIN is not asked).
    d = one(auth, Attempt("alice", totp(KEY, now + 30), channel="radius"), now + 30)
    assert d.accepted
    auth.close()


def test_pins_replicate(tmp_path: Path) -> None:
    config = make_config()
    master = Store.create(DataDir(tmp_path / "master"), config)
    sub = Store.create(DataDir(tmp_path / "sub"), config)
    sub.box = master.box
    try:
        accounts = Accounts(master, config)
        accounts.add_user("alice")
        accounts.add_user("bob")
        Pins(master, accounts).set("alice", "4711")
        Pins(master, accounts).set("bob", "123456")
        rows = changes_since(master, 0)
        assert apply_changes(sub, rows) == len(rows)
        sub_accounts = Accounts(sub, config)
        assert sub_accounts.get_user("alice").pin_set and sub_accounts.get_user("bob").pin_set
        assert pins.verify(sub, "alice", "4711123456") == ("ok", "123456")
        seq = rows[-1]["seq"]
        Pins(master, accounts).clear("alice")
        accounts.delete_user("bob")
        apply_changes(sub, changes_since(master, seq))
        assert not sub_accounts.get_user("alice").pin_set
        with sub.read() as conn:
            assert conn.execute(select(t.user_pins)).all() == []
    finally:
        sub.close()
        master.close()


def test_a_re_bootstrap_brings_the_master_s_pins(tmp_path: Path) -> None:
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
            Pins(master, accounts).set("alice", "4711")
            key_file, data = open_snapshot(make_snapshot(master, "f1", bytes(32)), "f1", bytes(32))
            resync(sub, key_file, data)
            assert pins.verify(sub, "alice", "4711") == ("ok", "")
        finally:
            sub.close()
    finally:
        master.close()
