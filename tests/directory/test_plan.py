"""The synchronisation's plan and its application, without a directory: what a run decides for
renames (swaps too), links, conflicts, leavers and the disabled bit, on both databases."""

from __future__ import annotations

import pytest

from openmfa.config import SOURCE_DEFAULTS, Config
from openmfa.directory.reader import Person, Reading, Source
from openmfa.directory.sync import DirectorySync, _Current, plan
from openmfa.errors import Conflict
from openmfa.node.accounts import Accounts
from openmfa.node.groups import Groups
from openmfa.store import tables as t
from openmfa.store.database import Store

SOURCE_TABLE = {**SOURCE_DEFAULTS, "name": "corp", "url": "ldap://x", "base_dns": ["dc=x"]}
SOURCE = Source.of(SOURCE_TABLE)


def run(store: Store, config: Config, *people: Person, source: Source = SOURCE) -> list[str]:
    reading = Reading(
        {p.external_id for p in people}, {p.external_id: p for p in people}, "full", ""
    )
    current = _Current(store, source.name)
    the_plan = plan(source, reading, current)
    DirectorySync(store, config)._apply(source, the_plan, current, "test")
    return [f"{a} {u} {d}".strip() for a, u, d in the_plan.rows()]


def names(store: Store) -> dict[str, bool]:
    with store.read() as conn:
        return {r.name: r.enabled for r in conn.execute(t.users.select())}


def test_renames_swaps_links_conflicts_and_leavers(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("dora")  # here before the directory: linked, not duplicated
    accounts.enroll("dora", "totp")
    first = run(store, config, Person("1", "ann"), Person("2", "ben"), Person("3", "dora"))
    assert first == ["add ann", "add ben", "link dora existing user, now from the directory"]
    accounts.enroll("ann", "totp")
    # ann and ben swap names (same ids): both renamed in one run, methods go with the id.
    swapped = run(store, config, Person("1", "ben"), Person("2", "ann"), Person("3", "dora"))
    assert sorted(swapped) == ["update ann name -> ben", "update ben name -> ann"]
    assert [m.kind for m in accounts.list_methods("ben")] == ["totp"]  # id 1's method
    assert accounts.list_methods("ann") == []
    assert [m.kind for m in accounts.list_methods("dora")] == ["totp"]
    # A name held by a user of no source, and a new id: a conflict, nothing merged.
    accounts.add_user("eve")
    clash = run(store, config, Person("1", "ben"), Person("2", "ann"), Person("3", "dora"),
                Person("4", "eve"), Person("5", "eve"))  # fmt: skip
    assert any(r.startswith("conflict") and "two people" in r for r in clash)
    # Leavers and the disabled bit: disabled, not removed (the default policy).
    left = run(store, config, Person("1", "ben", disabled=True))
    assert sorted(left) == [
        "disable ann left the directory or its filter",
        "disable ben disabled in the directory",
        "disable dora left the directory or its filter",
        "disable eve left the directory or its filter",
    ]
    assert names(store) == {"ben": False, "ann": False, "dora": False, "eve": False}
    back = run(store, config, Person("1", "ben"), Person("2", "ann"))
    assert sorted(back) == ["update ann enabled", "update ben enabled"]


def test_the_remove_policy_frees_the_name(store: Store, config: Config) -> None:
    remove = Source.of({**SOURCE.__dict__, "base_dns": ["dc=x"], "on_leave": "remove",
                        "phone_attributes": [], "incremental": True})  # fmt: skip
    run(store, config, Person("1", "ann"), source=remove)
    # ann left; a new person named ann (another id) takes the name in the same run.
    again = run(store, config, Person("9", "ann"), source=remove)
    assert sorted(again) == ["add ann", "remove ann left the directory"]
    with store.read() as conn:
        assert conn.execute(t.users.select()).one().external_id == "9"


def test_a_run_needs_data_format_5(store: Store, config: Config) -> None:
    from sqlalchemy import delete, insert

    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="4"))
    configured = Config(
        {**config.values, "directory": {**config.values["directory"], "sources": [SOURCE_TABLE]}},
        None,
    )
    with pytest.raises(Conflict, match="data format 5"):
        DirectorySync(store, configured).set_password("corp", "x")
    with pytest.raises(Conflict, match="data format 5"):
        DirectorySync(store, configured).run()


GROUPS = Source.of({**SOURCE_TABLE, "groups": True})


def run_groups(
    store: Store, config: Config, groups: dict[str, set[str]], *people: Person
) -> list[str]:
    reading = Reading(
        {p.external_id for p in people}, {p.external_id: p for p in people}, "full", ""
    )
    reading.groups = groups
    current = _Current(store, GROUPS.name)
    the_plan = plan(GROUPS, reading, current)
    DirectorySync(store, config)._apply(GROUPS, the_plan, current, "test")
    return [f"{a} {u} {d}".strip() for a, u, d in the_plan.rows()]


def test_the_directory_s_groups_never_touch_those_set_by_hand(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    by_hand = Groups(store, accounts)
    ann, ben = Person("1", "ann"), Person("2", "ben")
    first = run_groups(store, config, {"1": {"staff", "vpn"}}, ann, ben)
    assert first == ["add ann", "add ben", "groups ann +staff +vpn"]  # new people: groups too
    by_hand.add("ann", "admins")
    by_hand.add("ann", "vpn")  # by hand as well: two origins, one group
    u = accounts.get_user("ann")
    assert (u.groups, u.manual_groups, u.directory_groups) == (
        ["admins", "staff", "vpn"],
        ["admins", "vpn"],
        ["staff", "vpn"],
    )
    # The directory drops vpn and staff, adds ops; the groups set by hand stay.
    again = run_groups(store, config, {"1": {"ops"}, "2": {"ops", "bad/name"}}, ann, ben)
    assert "groups ann +ops -staff -vpn" in again and "groups ben +ops" in again
    assert any(r.startswith("skip") and "'bad/name'" in r for r in again)
    u = accounts.get_user("ann")
    assert (u.groups, u.manual_groups, u.directory_groups) == (
        ["admins", "ops", "vpn"],
        ["admins", "vpn"],
        ["ops"],
    )
    assert run_groups(store, config, {"1": {"ops"}, "2": {"ops"}}, ann, ben) == []  # no change
    # Removing by hand a group the directory gives is refused, saying where to change it.
    with pytest.raises(Conflict, match="directory"):
        by_hand.remove("ben", "ops")
    by_hand.remove("ann", "vpn")
    assert accounts.get_user("ann").groups == ["admins", "ops"]
    # ben leaves the directory: disabled, and in none of its groups any more.
    left = run_groups(store, config, {"1": {"ops"}}, ann)
    assert "groups ben -ops" in left
    assert accounts.get_user("ben").groups == []
    assert accounts.get_user("ann").groups == ["admins", "ops"]


def test_before_format_11_a_run_synchronises_people_and_says_groups_wait(
    store: Store, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import delete, insert

    from openmfa.directory import sync as sync_module

    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="10"))
    configured = Config(
        {
            **config.values,
            "directory": {
                **config.values["directory"],
                "sources": [{**SOURCE_TABLE, "groups": True}],
            },
        },
        None,
    )
    sync = DirectorySync(store, configured)
    reading = Reading({"1"}, {"1": Person("1", "ann")}, "full", "", groups={"1": {"vpn"}})
    monkeypatch.setattr(sync_module, "read", lambda *a, **k: reading)  # no directory needed
    (result,) = sync.run()
    assert result.applied and result.plan.counts()["added"] == 1
    assert result.plan.groups == {}
    assert any(a == "note" and "data format 11" in d for a, _, d in result.plan.rows())
    assert Accounts(store, configured).get_user("ann").groups == []
    with pytest.raises(Conflict, match="data format 11"):
        Groups(store, Accounts(store, configured)).add("ann", "vpn")
