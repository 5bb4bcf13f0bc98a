"""Data formats in a farm: the old format until finalize, then every node moves its rows forward.

A real store (SQLite, and PostgreSQL where the master's database would be shared by every node)
plays the upgraded master of a farm still at format 1; a SQLite copy with the master's data key
plays a subordinate replaying the change records.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete, insert, select

from openmfa.config import Config
from openmfa.errors import Conflict, FormatTooNew, InvalidInput, KeyFileError, NotFound
from openmfa.farm import membership
from openmfa.farm.feed import changes_since
from openmfa.farm.follower import apply_changes
from openmfa.node.accounts import Accounts
from openmfa.store import formats
from openmfa.store import tables as t
from openmfa.store.changes import Change, ChangeWriter
from openmfa.store.database import DATA_FORMAT, DataDir, Store
from tests.conftest import make_config, pg_database


def _at_format_1(store: Store) -> None:
    """The data set as the previous release left it (no users yet: rows of no format)."""
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="1"))


def _rows(store: Store) -> dict[str, tuple[str, str, bool]]:
    """name -> (email column, phone column, sealed?) as stored."""
    with store.read() as conn:
        return {
            r.name: (r.email, r.phone, r.contact_enc is not None)
            for r in conn.execute(
                select(t.users.c.name, t.users.c.email, t.users.c.phone, t.users.c.contact_enc)
            )
        }


def _contacts(store: Store, config: Config) -> dict[str, tuple[str, str]]:
    return {u.name: (u.email, u.phone) for u in Accounts(store, config).list_users()}


def test_the_farm_format_moves_only_at_finalize_and_every_node_moves_with_it(
    store: Store, config: Config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert DATA_FORMAT >= 2
    _at_format_1(store)
    m = membership.new_farm("http://master:8480")
    with store.write() as conn:
        membership.save(store, conn, m)
    writer = ChangeWriter(store)
    writer.commit([Change("farm.format", {"format": 1})])
    sub = Store.create(DataDir(tmp_path_factory.mktemp("sub")), make_config())
    sub.box = store.box  # a subordinate holds the master's data key (the snapshot brings it)
    _at_format_1(sub)
    acc = Accounts(store, config)
    try:
        # Before finalize: this release writes what the previous one reads.
        acc.add_user("alice", email="alice@example.org", phone="+15550100")
        acc.update_user("alice", {"phone": "+15550101"})
        with store.write() as conn:
            assert formats.forward_alone(conn) is None  # in a farm: `openmfa migrate` waits
        rows = changes_since(store, 0)
        assert {r["format"] for r in rows} == {1}
        assert rows[-2]["payload"]["email"] == "alice@example.org"  # the plain value
        assert _rows(store)["alice"] == ("alice@example.org", "+15550101", False)
        apply_changes(sub, rows)
        assert _rows(sub)["alice"] == ("alice@example.org", "+15550101", False)

        # finalize (once every node reads format 2): one record moves the master's rows ...
        writer.commit([Change("farm.format", {"format": 2})])
        assert store.data_format() == 2
        assert _rows(store)["alice"] == ("", "", True)
        assert _contacts(store, config)["alice"] == ("alice@example.org", "+15550101")
        # ... and from then on records carry the sealed value only.
        acc.add_user("bob", email="bob@example.org")
        acc.update_user("alice", {"email": "alice@example.net"})
        newer = changes_since(store, rows[-1]["seq"])
        assert [r["format"] for r in newer] == [1, 2, 2]  # finalize itself, then format 2
        for r in newer[1:]:
            text = repr(r["payload"])
            assert "example" not in text and "contact_enc" in text, text

        # A node whose release reads format 1 only is given finalize: it applies nothing.
        real = formats.DATA_FORMAT
        formats.DATA_FORMAT = 1
        try:
            with pytest.raises(FormatTooNew, match="Upgrade this node"):
                apply_changes(sub, newer)
        finally:
            formats.DATA_FORMAT = real
        assert sub.data_format() == 1 and _rows(sub)["alice"][2] is False

        # A subordinate that reads format 2 replays finalize: its rows move, in one transaction.
        assert apply_changes(sub, newer) == 3
        assert sub.data_format() == 2
        assert {name: sealed for name, (_, _, sealed) in _rows(sub).items()} == {
            "alice": True,
            "bob": True,
        }
        assert (
            _contacts(sub, config)
            == _contacts(store, config)
            == {
                "alice": ("alice@example.net", "+15550101"),
                "bob": ("bob@example.org", ""),
            }
        )
    finally:
        sub.close()


def test_a_node_on_its_own_moves_at_migrate(store: Store, config: Config) -> None:
    _at_format_1(store)
    Accounts(store, config).add_user("carol", phone="+15550199")
    assert _rows(store)["carol"] == ("", "+15550199", False)
    with store.write() as conn:
        assert formats.forward_alone(conn) == (1, DATA_FORMAT)
    with store.write() as conn:
        assert formats.forward_alone(conn) == (DATA_FORMAT, DATA_FORMAT)  # once
    assert _rows(store)["carol"] == ("", "", True)
    assert _contacts(store, config)["carol"] == ("", "+15550199")
    changes_before = len(changes_since(store, 0))
    too_new = DATA_FORMAT + 1
    with store.write() as conn, pytest.raises(FormatTooNew, match=f"writes up to {DATA_FORMAT}"):
        formats.forward(conn, too_new)
    assert store.data_format() == DATA_FORMAT and len(changes_since(store, 0)) == changes_before


def test_a_sealed_contact_opens_only_for_its_own_user(store: Store, config: Config) -> None:
    """The sealed value is bound to the user's id: copied onto another user it does not open."""
    acc = Accounts(store, config)
    acc.add_user("dave", email="dave@example.org")
    acc.add_user("erin", email="erin@example.org")
    with store.write() as conn:
        sealed = conn.scalar(select(t.users.c.contact_enc).where(t.users.c.name == "dave"))
        conn.execute(t.users.update().where(t.users.c.name == "erin").values(contact_enc=sealed))
    with pytest.raises(KeyFileError, match="does not open"):
        acc.get_user("erin")
    assert acc.get_user("dave").email == "dave@example.org"


@pytest.mark.postgres
def test_a_shared_database_moves_once_at_finalize(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two nodes on one PostgreSQL database: until finalize both write format 1 (an old
    release's node reads every row); the finalize record moves the rows once, for both."""
    databases = pg_database()
    url = next(databases)
    config = make_config(store={"url": url})
    one_dd = DataDir(tmp_path_factory.mktemp("one"))
    one = Store.create(one_dd, config)
    two_dd = DataDir(tmp_path_factory.mktemp("two"))
    two_dd.root.mkdir(parents=True, exist_ok=True)
    two_dd.key_file.write_bytes(one_dd.key_file.read_bytes())  # every node: one data key
    two_dd.key_file.chmod(0o600)
    try:
        _at_format_1(one)
        with one.write() as conn:
            membership.save(one, conn, membership.new_shared_farm())
        ChangeWriter(one).commit([Change("farm.format", {"format": 1})])
        two = Store.open(two_dd, config)
        try:
            Accounts(one, config).add_user("frank", email="frank@example.org")
            Accounts(two, config).add_user("grace", phone="+15550142")
            with two.write() as conn:
                assert formats.forward_alone(conn) is None  # `openmfa migrate` waits
            assert {n: sealed for n, (_, _, sealed) in _rows(one).items()} == {
                "frank": False,
                "grace": False,
            }
            ChangeWriter(two).commit([Change("farm.format", {"format": 2})])  # finalize
            assert one.data_format() == two.data_format() == 2
            assert _rows(one) == {"frank": ("", "", True), "grace": ("", "", True)}
            assert (
                _contacts(one, config)
                == _contacts(two, config)
                == {
                    "frank": ("frank@example.org", ""),
                    "grace": ("", "+15550142"),
                }
            )
        finally:
            two.close()
    finally:
        one.close()
        next(databases, None)


def test_preferences_wait_for_format_4_then_replay_to_every_node(
    store: Store, config: Config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A user's default method and "sign out everywhere" travel in records a release reading
    only format 3 would drop: below format 4 they are refused (saying what to do); from 4 on
    a subordinate replays them, and a removed default is forgotten everywhere."""
    acc = Accounts(store, config)
    acc.add_user("fay")
    app = acc.enroll("fay", "totp").method.id
    codes = acc.enroll("fay", "backup-codes").method.id
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="3"))
    for change in (lambda: acc.set_default_method("fay", app), lambda: acc.end_sessions("fay")):
        with pytest.raises(Conflict, match=r"data format 4.*farm finalize"):
            change()
    assert acc.get_user("fay").default_method == "" and acc.sessions_after("fay") == 0.0
    with store.write() as conn:
        assert formats.forward(conn, 4) == (3, 4)

    with pytest.raises(NotFound):
        acc.set_default_method("fay", "m-not-hers")
    with pytest.raises(InvalidInput, match="emergencies"):
        acc.set_default_method("fay", codes)
    assert acc.set_default_method("fay", app).default_method == app
    ended = acc.end_sessions("fay")
    assert acc.sessions_after("fay") == ended > 0

    sub = Store.create(DataDir(tmp_path_factory.mktemp("sub")), make_config())
    sub.box = store.box
    try:
        apply_changes(sub, changes_since(store, 0))
        mirror = Accounts(sub, make_config())
        assert mirror.get_user("fay").default_method == app
        assert mirror.sessions_after("fay") == ended
        seq = changes_since(store, 0)[-1]["seq"]
        acc.remove_method("fay", app)
        assert acc.get_user("fay").default_method == ""
        apply_changes(sub, changes_since(store, seq))
        assert mirror.get_user("fay").default_method == ""
    finally:
        sub.close()
