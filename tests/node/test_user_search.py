"""Finding people by their sealed email address (``node.user_search``, data format 16) on both
databases: the keyed digest follows every change of address, on a subordinate too; before
format 16 the search opens every address and answers the same, and the format's step writes
everyone's digest; the SDK's ``GET /v1/users?email=``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select

from openmfa.config import Config
from openmfa.errors import InvalidInput
from openmfa.farm.feed import changes_since
from openmfa.farm.follower import apply_changes
from openmfa.node.accounts import Accounts
from openmfa.node.user_search import UserSearch
from openmfa.store import formats
from openmfa.store import tables as t
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config


def _names(search: UserSearch, email: str) -> list[str]:
    return [u.name for u in search.by_email(email)]


def _digests(store: Store) -> dict[str, bytes | None]:
    with store.read() as conn:
        return {r.name: r.email_index for r in conn.execute(select(t.users))}


def test_found_by_address_whatever_its_case_after_a_change(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    search = UserSearch(store, accounts)
    accounts.add_user("alice", email="Alice@Example.org")
    accounts.add_user("bob", email="shared@example.org")
    accounts.add_user("carol", email="shared@example.org")
    accounts.add_user("dave")
    accounts.add_user("eve", email="ren\u00e9@example.org")  # é composed
    assert _names(search, "alice@example.org") == ["alice"]
    assert _names(search, "  ALICE@example.ORG ") == ["alice"]
    assert _names(search, "shared@example.org") == ["bob", "carol"]
    assert _names(search, "nobody@example.org") == []
    assert _names(search, " ") == []
    assert _names(search, "rene\u0301@example.org") == ["eve"]  # é as e and an accent
    accounts.update_user("alice", {"email": "a.new@example.org"})
    assert _names(search, "alice@example.org") == []
    assert _names(search, "a.new@example.org") == ["alice"]
    accounts.update_user("bob", {"phone": "+31 20 555 0100"})  # the address stays his
    assert _names(search, "shared@example.org") == ["bob", "carol"]
    accounts.delete_user("carol")
    assert _names(search, "shared@example.org") == ["bob"]
    digests = _digests(store)
    assert digests["dave"] is None and all(digests[n] for n in ("alice", "bob"))
    assert b"example" not in b"".join(d for d in digests.values() if d)  # keyed, not the address
    for bad in ("", "x" * 256):
        with pytest.raises(InvalidInput, match="1 to 255 characters"):
            search.by_email(bad)


def test_before_format_16_the_same_answer_and_the_step_writes_every_digest(
    store: Store, config: Config
) -> None:
    accounts = Accounts(store, config)
    search = UserSearch(store, accounts)
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="15"))
    accounts.add_user("alice", email="alice@example.org")
    accounts.add_user("bob", email="bob@example.org")
    accounts.update_user("bob", {"email": "Bob.B@example.org"})
    assert set(_digests(store).values()) == {None}  # a release of format 15 could go on
    assert _names(search, "bob.b@EXAMPLE.org") == ["bob"]
    assert _names(search, "bob@example.org") == []
    with store.write() as conn:
        assert formats.forward(conn, formats.EMAIL_INDEX_FORMAT) == (15, 16)
    assert all(_digests(store).values())
    assert _names(search, "bob.b@example.org") == ["bob"]
    assert _names(search, "alice@example.org") == ["alice"]


def test_a_subordinate_finds_the_same_people(tmp_path: Path) -> None:
    config = make_config()
    master = Store.create(DataDir(tmp_path / "master"), config)
    sub = Store.create(DataDir(tmp_path / "sub"), config)
    sub.box = master.box
    try:
        accounts = Accounts(master, config)
        accounts.add_user("alice", email="alice@example.org")
        accounts.add_user("bob", email="bob@example.org")
        accounts.update_user("alice", {"email": "alice@example.net"})
        apply_changes(sub, changes_since(master, 0))
        assert _digests(sub) == _digests(master)
        found = UserSearch(sub, Accounts(sub, config))
        assert _names(found, "alice@example.net") == ["alice"]
        assert _names(found, "alice@example.org") == []
    finally:
        master.close()
        sub.close()
