from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from openmfa.config import Config
from openmfa.errors import (
    DataFileExists,
    DataFileMissing,
    FormatTooNew,
    KeyFileError,
    NeedsMigration,
    StoreError,
)
from openmfa.node.accounts import Accounts
from openmfa.node.apikeys import ApiKeys
from openmfa.store import database
from openmfa.store import tables as t
from openmfa.store.changes import Change, apply
from openmfa.store.crypto import create_key_file
from openmfa.store.database import DATA_FORMAT, DataDir, Store, engine_for

SECRET_B32 = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _all_bytes(store: Store) -> bytes:
    """Everything the database holds, as bytes (the SQLite files, or a PostgreSQL dump)."""
    if store.is_sqlite:
        root = store.data_dir.root
        return b"".join(p.read_bytes() for p in root.glob("openmfa.db*"))
    with store.read() as conn:
        out = b""
        for table in t.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                out += repr(tuple(row)).encode()
        return out


def test_create_then_open_round_trip(store: Store, backend: tuple[DataDir, Config]) -> None:
    dd, config = backend
    Accounts(store, config).add_user("alice")
    store.close()
    again = Store.open(dd, config)
    try:
        assert again.data_format() == DATA_FORMAT
        assert again.ready() == (True, "ok")
        assert Accounts(again, config).get_user("alice").name == "alice"
    finally:
        again.close()


def test_create_refuses_existing(store: Store, backend: tuple[DataDir, Config]) -> None:
    dd, config = backend
    with pytest.raises(DataFileExists, match="nothing was changed"):
        Store.create(dd, config)


def test_open_missing_data_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileMissing, match="openmfa init"):
        Store.open(DataDir(tmp_path))


def test_every_config_write_appends_a_change_record(store: Store, config: Config) -> None:
    acc = Accounts(store, config)
    with store.read() as conn:
        before = Store.generation(conn)
    acc.add_user("alice", email="a@example.org")
    acc.enroll("alice", "totp", secret=SECRET_B32)
    ApiKeys(store).create("portal", "portal")
    with store.read() as conn:
        rows = conn.execute(
            select(t.changes).where(t.changes.c.seq > before).order_by(t.changes.c.seq)
        ).all()
        assert Store.generation(conn) == rows[-1].seq
    assert [r.kind for r in rows] == ["user.add", "method.add", "apikey.add"]
    assert all(r.format == DATA_FORMAT for r in rows)
    assert rows[0].payload["name"] == "alice" and isinstance(rows[0].payload["id"], int)


def test_change_records_replay_to_the_same_rows(store: Store, config: Config) -> None:
    """What a subordinate will do: replay the records on an empty data set."""
    acc = Accounts(store, config)
    acc.add_user("alice")
    acc.enroll("alice", "backup-codes")
    with store.write() as conn:
        records = [
            Change(r.kind, dict(r.payload))
            for r in conn.execute(select(t.changes).order_by(t.changes.c.seq))
            if r.kind.startswith(("user", "method"))
        ]
        users = conn.execute(select(t.users)).all()
        codes = conn.execute(select(t.backup_codes.c.code_hash)).scalars().all()
        for table in (t.backup_codes, t.method_state, t.methods, t.user_state, t.users):
            conn.execute(delete(table))
        for change in records:
            apply(conn, change)
        assert conn.execute(select(t.users)).all() == users
        assert conn.execute(select(t.backup_codes.c.code_hash)).scalars().all() == codes


def test_secrets_encrypted_and_keys_hashed_at_rest(store: Store, config: Config) -> None:
    acc = Accounts(store, config)
    acc.add_user("alice")
    acc.enroll("alice", "totp", secret=SECRET_B32)
    codes = acc.enroll("alice", "backup-codes").backup_codes
    token = ApiKeys(store).create("k", "admin")
    raw = _all_bytes(store)
    seed = base64.b32decode(SECRET_B32)
    assert seed not in raw and seed.hex().encode() not in raw and SECRET_B32.encode() not in raw
    assert token.split("_", 2)[2].encode() not in raw
    assert codes and all(c.replace("-", "").encode() not in raw for c in codes)


def test_format_too_new_is_refused_untouched(store: Store, backend: tuple[DataDir, Config]) -> None:
    dd, config = backend
    with store.write() as conn:
        conn.execute(update(t.meta).where(t.meta.c.key == "data_format").values(value="99"))
    store.close()
    before = dd.data_file.read_bytes() if not config.get("store", "url") else None
    with pytest.raises(
        FormatTooNew, match=r"format 99.*newer OpenMFA release.*Nothing was changed"
    ):
        Store.open(dd, config)
    if before is not None:
        assert dd.data_file.read_bytes() == before


def test_unknown_schema_revision_is_used_only_above_a_known_floor(
    store: Store, backend: tuple[DataDir, Config]
) -> None:
    """A newer release's schema that only added to one this release knows (its floor) is read
    on — a shared database keeps serving the old nodes of a rolling upgrade; anything else is
    refused before any change."""
    dd, config = backend
    store.close()

    def run(sql: str) -> None:
        engine = engine_for(dd, config)
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
        engine.dispose()

    run("UPDATE alembic_version SET version_num = '9999'")
    Store.open(dd, config).close()  # its floor is 0002, which this release knows
    run("UPDATE meta SET value = '9998' WHERE key = 'schema.floor'")
    with pytest.raises(FormatTooNew, match="'9999' is unknown"):
        Store.open(dd, config)
    run("DELETE FROM meta WHERE key = 'schema.floor'")
    with pytest.raises(FormatTooNew, match="'9999' is unknown"):
        Store.open(dd, config)


def test_unmigrated_schema_is_refused(store: Store, backend: tuple[DataDir, Config]) -> None:
    dd, config = backend
    with store.write() as conn:
        conn.exec_driver_sql("DELETE FROM alembic_version")
    store.close()
    with pytest.raises(NeedsMigration, match="openmfa migrate"):
        Store.open(dd, config)


def test_corrupt_key_file(store: Store, backend: tuple[DataDir, Config]) -> None:
    dd, config = backend
    store.close()
    dd.key_file.write_text("openmfa-key-v1:not base64 at all!\n")
    with pytest.raises(KeyFileError, match=r"corrupt.*restore it from your backup"):
        Store.open(dd, config)


def test_key_file_of_another_node(store: Store, backend: tuple[DataDir, Config]) -> None:
    dd, config = backend
    store.close()
    dd.key_file.unlink()
    create_key_file(dd.key_file)
    with pytest.raises(KeyFileError, match="does not belong to this data file"):
        Store.open(dd, config)


def test_key_file_mode(store: Store) -> None:
    assert store.data_dir.key_file.stat().st_mode & 0o777 == 0o600


def test_writers_of_one_process_queue_for_the_write_lock_and_wait_bounded(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not store.is_sqlite:
        pytest.skip("PostgreSQL takes row locks itself; no process-wide write lock")
    holding, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with store.write() as conn:
            conn.execute(t.meta.insert().values(key="first", value="1"))
            holding.set()
            release.wait(10)
            order.append("first committed")

    def second() -> None:
        with store.write() as conn:  # queues behind the first, then sees its row
            order.append("second began")
            assert conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "first")) == "1"

    a = threading.Thread(target=first)
    a.start()
    assert holding.wait(10)
    monkeypatch.setattr(database, "BUSY_SECONDS", 0.2)
    with pytest.raises(StoreError, match="stayed locked"), store.write():  # bounded, said
        pass
    monkeypatch.setattr(database, "BUSY_SECONDS", 10.0)
    b = threading.Thread(target=second)
    b.start()
    release.set()
    a.join(10)
    b.join(10)
    assert order == ["first committed", "second began"]
    with store.write(), store.write_lock:  # re-entrant: a nested write does not wait for itself
        pass
