"""The farm role has one reader (``store.role``): what each stored role allows, read from a
real data file the way ``farm.membership`` writes it, and refused writes naming the master."""

from __future__ import annotations

import pytest

from openmfa.config import Config
from openmfa.errors import NotMaster
from openmfa.farm import membership
from openmfa.node.accounts import Accounts
from openmfa.store.database import Store
from openmfa.store.role import (
    ALONE,
    HANDOVER,
    MASTER,
    SHARED,
    SUBORDINATE,
    FarmRole,
    read_role,
    role_from,
)

ALLOWS = {
    # role: (writes, leads_pushes, handing_over)
    ALONE: (True, True, False),
    MASTER: (True, True, False),
    SHARED: (True, True, False),
    HANDOVER: (False, True, True),
    SUBORDINATE: (False, False, False),
}
FARM = {
    # role: (follows, feeds, must_hand_over)
    ALONE: (False, False, False),
    MASTER: (False, True, True),
    SHARED: (False, False, False),
    HANDOVER: (False, False, True),
    SUBORDINATE: (True, False, False),
}


@pytest.mark.parametrize("name", sorted(ALLOWS))
def test_what_each_role_allows(name: str) -> None:
    role = FarmRole(name, "http://m:8480", 2)
    assert (role.writes, role.leads_pushes, role.handing_over) == ALLOWS[name]
    assert (role.follows, role.feeds, role.must_hand_over) == FARM[name]
    assert role.in_farm is (name != ALONE)


def test_an_unknown_role_allows_nothing() -> None:
    role = FarmRole("from-a-newer-release")
    assert not (role.writes or role.leads_pushes or role.handing_over)
    assert not (role.follows or role.feeds or role.must_hand_over)


def test_a_node_on_its_own_is_alone(store: Store) -> None:
    assert read_role(store) == FarmRole(ALONE, "", 0)
    assert membership.load(store) is None


@pytest.mark.parametrize("name", [MASTER, SUBORDINATE, HANDOVER, SHARED])
def test_the_role_membership_saved_is_the_role_read(store: Store, name: str) -> None:
    m = membership.Membership("f1", name, 7, "http://master:8480", bytes(32), "http://me:8480")
    with store.write() as conn:
        membership.save(store, conn, m)
        assert read_role(store, conn) == FarmRole(name, "http://master:8480", 7)
    assert read_role(store) == FarmRole(name, "http://master:8480", 7)
    loaded = membership.load(store)
    assert loaded is not None and loaded.farm_role == read_role(store)
    with store.read() as conn:
        assert role_from(conn) == read_role(store)


def test_writes_are_refused_by_the_role(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    for name, message in (
        (SUBORDINATE, "on the master at http://master:8480"),
        (HANDOVER, "handing the master role"),
    ):
        m = membership.Membership("f1", name, 1, "http://master:8480", bytes(32))
        with store.write() as conn:
            membership.save(store, conn, m)
        with pytest.raises(NotMaster, match=message) as refused:
            accounts.add_user("carol")
        assert refused.value.master_url == ("http://master:8480" if name == SUBORDINATE else "")
    with store.write() as conn:
        membership.save(store, conn, membership.new_shared_farm())
    accounts.add_user("carol")  # every node of a shared database writes it
    assert [u.name for u in accounts.list_users()] == ["carol"]
