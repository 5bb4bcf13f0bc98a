"""Pieces of the upgrader that need no installed release."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from openmfa.farm import membership
from openmfa.farm.agent import data_comes_back
from openmfa.install.record import InstallRecord
from openmfa.install.releases import InstallFailed
from openmfa.install.upgrader import Journal, Upgrade
from openmfa.node.accounts import Accounts
from openmfa.store import tables as t
from openmfa.store.backups import Backups
from openmfa.store.database import DataDir, Store
from tests.conftest import pg_database


def test_rollback_puts_the_previous_server_toml_back_before_restoring(tmp_path: Path) -> None:
    """The merged file may hold settings the previous release does not know; it must read
    server.toml to restore its backup, so the file from the backup goes back first."""
    data = tmp_path / "var"
    backups = tmp_path / "elsewhere"
    before = f'[backup]\ndir = "{backups}"\n'
    (backups / "B1").mkdir(parents=True)
    (backups / "B1" / "server.toml").write_text(before)
    data.mkdir()
    (data / "server.toml").write_text(before + "[farm]\nsetting_of_the_new_release = 1\n")
    record = tmp_path / "install.toml"
    InstallRecord(str(tmp_path), "0.2.0", ["server"], str(data)).save(record)

    Upgrade(record, lambda _: None)._put_back_config(Journal("0.2.0", "0.2.1", "b", backup_id="B1"))
    assert (data / "server.toml").read_text() == before

    # No such backup: the file is left as it is (the restore then says what is wrong).
    (data / "server.toml").write_text("changed = 1\n")
    Upgrade(record, lambda _: None)._put_back_config(Journal("0.2.0", "0.2.1", "b", backup_id="B9"))
    assert (data / "server.toml").read_text() == "changed = 1\n"


def _node(tmp_path: Path) -> tuple[DataDir, Path]:
    dd = DataDir(tmp_path / "var")
    Store.create(dd, dd.config()).close()
    record = tmp_path / "install.toml"
    InstallRecord(str(tmp_path), "0.2.1", ["server"], str(dd.root)).save(record)
    return dd, record


def _audit(dd: DataDir) -> list[tuple[int, str, str]]:
    store = Store.open(dd)
    try:
        with store.read() as conn:
            return [
                (r.id, r.action, r.user_name)
                for r in conn.execute(select(t.audit).order_by(t.audit.c.id))
            ]
    finally:
        store.close()


def test_a_restore_keeps_the_audit_events_recorded_since_the_backup(tmp_path: Path) -> None:
    dd, record = _node(tmp_path)
    store = Store.open(dd)
    Accounts(store, dd.config()).add_user("before")
    store.close()
    backup = Backups(dd, dd.config()).create("before-upgrade")
    store = Store.open(dd)
    Accounts(store, dd.config()).add_user("after")
    store.close()
    everything = _audit(dd)
    assert [a[2] for a in everything] == ["before", "after"]

    Backups(dd, dd.config()).restore(backup.id)  # what the previous release's restore does
    assert [a[2] for a in _audit(dd)] == ["before"]
    Upgrade(record, lambda _: None)._carry_audit()
    assert _audit(dd) == everything  # same ids: a farm master takes them in id order
    store = Store.open(dd)
    try:
        assert [u.name for u in Accounts(store, dd.config()).list_users()] == ["before"]
        Accounts(store, dd.config()).add_user("later")
    finally:
        store.close()
    assert _audit(dd)[-1][0] > everything[-1][0]  # ids keep rising


def test_a_farm_node_rolls_back_only_while_the_farm_can_go_back(tmp_path: Path) -> None:
    dd, record = _node(tmp_path)
    store = Store.open(dd)
    with store.write() as conn:  # the data as the previous release left it: format 1
        conn.execute(t.meta.update().where(t.meta.c.key == "data_format").values(value="1"))
    store.close()
    backup = Backups(dd, dd.config()).create("before-upgrade")
    last = {"from": "0.2.0", "to": "0.2.1", "backup": backup.id}
    assert data_comes_back(dd, last) is True  # on its own: the backup comes back
    # `openmfa rollback` asks the farm's rule through the upgrader (which knows no farms)
    asked: list[dict[str, str]] = []
    up = Upgrade(record, lambda _: None, lambda _dd, got: asked.append(got) or True)
    assert up.data_comes_back(dd, last) and asked == [last]

    def join(role: str, fmt: int) -> None:
        store = Store.open(dd)
        m = membership.Membership("f1", role, 2, "http://master:8480", bytes(32))
        with store.write() as conn:
            membership.save(store, conn, m)
            conn.execute(t.meta.delete().where(t.meta.c.key == "farm.format"))
            conn.execute(t.meta.insert().values(key="farm.format", value=str(fmt)))
        store.close()

    join(membership.SUBORDINATE, 1)
    assert data_comes_back(dd, last) is True  # its copy comes back, then catches up
    join(membership.SHARED, 1)
    assert data_comes_back(dd, last) is False  # one database: it stays
    join(membership.MASTER, 1)
    with pytest.raises(InstallFailed, match="farm promote"):
        data_comes_back(dd, last)
    join(membership.SUBORDINATE, 2)
    with pytest.raises(InstallFailed, match=r"moved to 2.*Nothing was changed"):
        data_comes_back(dd, last)


@pytest.mark.postgres
def test_a_failed_upgrade_of_a_shared_database_node_leaves_the_database(tmp_path: Path) -> None:
    """The other nodes keep writing to a shared database while one node upgrades: undoing that
    node's upgrade puts its release and server.toml back, never the database's backup."""
    databases = pg_database()
    url = next(databases)
    try:
        dd = DataDir(tmp_path / "var")
        dd.root.mkdir(parents=True)
        dd.config_file.write_text(f'[store]\nurl = "{url}"\n')
        store = Store.create(dd, dd.config())
        record = tmp_path / "install.toml"
        InstallRecord(str(tmp_path), "0.2.1", ["server"], str(dd.root)).save(record)
        up = Upgrade(record, lambda _: None)
        assert up._shared_database() is False  # PostgreSQL, but not (yet) a shared farm
        with store.write() as conn:
            membership.save(store, conn, membership.new_shared_farm())
        assert up._shared_database() is True
        backup = Backups(dd, dd.config()).create("before-upgrade-0-2-2")
        Accounts(store, dd.config()).add_user("written-by-another-node")
        store.close()
        done = ["checks", "backup", "install", "migrate", "config"]
        up._undo(Journal("0.2.1", "0.2.2", "b", done=done, backup_id=backup.id))
        store = Store.open(dd)
        try:
            names = [u.name for u in Accounts(store, dd.config()).list_users()]
        finally:
            store.close()
        assert names == ["written-by-another-node"]
    finally:
        next(databases, None)
