"""OpenID Connect keys, clients and Entra subjects are data: a subordinate that replays the
master's change records signs with the same key, knows the same clients and people, and a
deleted user's mapping goes on every node."""

from __future__ import annotations

import uuid
from pathlib import Path

from openmfa.farm.feed import changes_since
from openmfa.farm.follower import apply_changes
from openmfa.node.accounts import Accounts
from openmfa.node.oidc_clients import OidcClients
from openmfa.node.oidc_keys import OidcKeys
from openmfa.node.oidc_subjects import OidcSubjects
from openmfa.store.database import DataDir, Store
from tests.node.oidc_helpers import Clock, header_of, oidc_config, verify_independently


def test_a_subordinate_replays_keys_clients_and_subjects(tmp_path: Path) -> None:
    config = oidc_config()
    master = Store.create(DataDir(tmp_path / "master"), config)
    sub = Store.create(DataDir(tmp_path / "sub"), config)
    sub.box = master.box  # a subordinate holds the master's data key (the snapshot brings it)
    try:
        clock = Clock()
        accounts = Accounts(master, config)
        accounts.add_user("alice")
        token = OidcKeys(master, config, clock).sign({"sub": "x"})
        client, secret = OidcClients(master).add("app", ["https://app.example.org/cb"])
        tid, oid = str(uuid.uuid4()), str(uuid.uuid4())
        OidcSubjects(master).map("alice", oid, tid)

        apply_changes(sub, changes_since(master, 0))
        keys = OidcKeys(sub, config, clock)
        again = keys.sign({"sub": "y"})
        assert header_of(again)["kid"] == header_of(token)["kid"]
        assert verify_independently(token, keys.jwks())["sub"] == "x"
        assert OidcClients(sub).authenticate(client.client_id, secret).name == "app"
        assert OidcSubjects(sub).find(tid, oid) == "alice"

        seq = changes_since(master, 0)[-1]["seq"]
        accounts.delete_user("alice")
        apply_changes(sub, changes_since(master, seq))
        assert OidcSubjects(master).find(tid, oid) is None
        assert OidcSubjects(sub).find(tid, oid) is None and OidcSubjects(sub).list() == []
    finally:
        sub.close()
        master.close()


def test_a_running_subordinate_signs_with_replayed_keys_and_forgets_removed_ones(
    tmp_path: Path,
) -> None:
    config = oidc_config()
    master = Store.create(DataDir(tmp_path / "master"), config)
    sub = Store.create(DataDir(tmp_path / "sub"), config)
    sub.box = master.box
    try:
        clock = Clock()
        at_master = OidcKeys(master, config, clock)
        first = header_of(at_master.sign({"sub": "x"}))["kid"]
        apply_changes(sub, changes_since(master, 0))
        keys = OidcKeys(sub, config, clock)  # runs on, its opened keys in memory
        assert header_of(keys.sign({"sub": "a"}))["kid"] == first
        seq = changes_since(master, 0)[-1]["seq"]
        second = at_master.rotate("RS256").kid
        apply_changes(sub, changes_since(master, seq))
        assert header_of(keys.sign({"sub": "b"}))["kid"] == first  # not its time yet
        clock.now += 48 * 3600 + 1
        token = keys.sign({"sub": "c"})
        assert header_of(token)["kid"] == second
        assert verify_independently(token, at_master.jwks())["sub"] == "c"
        assert first in keys._private  # still published: its tokens may live
        clock.now += 300 + 300 + 1
        seq = changes_since(master, 0)[-1]["seq"]
        at_master.rotate("RS256")  # removes the first key from the data
        apply_changes(sub, changes_since(master, seq))
        assert header_of(keys.sign({"sub": "d"}))["kid"] == second
        assert first not in keys._private and first not in {k["kid"] for k in keys.jwks()["keys"]}
    finally:
        sub.close()
        master.close()
