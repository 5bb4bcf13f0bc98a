"""Opening, creating and checking the data file (SQLite by default, or PostgreSQL).

Invariant owned here: a release never writes to a data file whose data format it cannot read.
``Store.open`` refuses a file written by a newer release (``FormatTooNew``) or one not yet
migrated (``NeedsMigration``) before any statement that could change it runs.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, func, insert, inspect, select
from sqlalchemy.pool import NullPool

from ..config import CONFIG_NAME, Config
from ..config import load as load_config
from ..errors import (
    DataFileExists,
    DataFileMissing,
    FormatTooNew,
    KeyFileError,
    NeedsMigration,
    StoreError,
)
from . import formats
from . import tables as t
from .crypto import SecretBox, create_key_file, read_key_file
from .formats import DATA_FORMAT as DATA_FORMAT  # re-exported: where most callers look
from .formats import READS_FORMATS as READS_FORMATS

DATA_FILE = "openmfa.db"
KEY_FILE = "openmfa.key"


@dataclass(frozen=True)
class DataDir:
    """Where a node keeps its files."""

    root: Path

    @property
    def data_file(self) -> Path:
        return self.root / DATA_FILE

    @property
    def key_file(self) -> Path:
        return self.root / KEY_FILE

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    def config(self) -> Config:
        return load_config(self.config_file)


BUSY_SECONDS = 10.0
"""How long a writer waits for the write lock (SQLite's busy_timeout, and WriteLock's)."""


SQLITE_POOL = 16
"""Connections to the data file kept open for reads: as many as the requests a portal host or
a RADIUS client sends at once (16 in the benchmarks). Beyond it one is opened (and its PRAGMAs
run) for each transaction and closed after, which cost more than the reads themselves."""


def engine_for(data_dir: DataDir, config: Config, *, pool: bool = True) -> Engine:
    url: str = config.get("store", "url")
    if not url:
        sync = "FULL" if config.get("store", "sqlite_synchronous") == "full" else "NORMAL"
        file = f"sqlite+pysqlite:///{data_dir.data_file}"
        engine = (
            create_engine(file, pool_size=SQLITE_POOL, max_overflow=32)
            if pool
            else create_engine(file, poolclass=NullPool)
        )
        _sqlite_setup(engine, sync)
        return engine
    return create_engine(driver_url(url), pool_pre_ping=True, pool_size=8, max_overflow=8)


def driver_url(url: str) -> str:
    """A ``[store] url`` as SQLAlchemy takes it (``postgresql://`` means psycopg 3)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_setup(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front, so a read-then-write transaction can never be
        # refused half-way with SQLITE_BUSY (and two writers cannot interleave).
        mode = "IMMEDIATE" if conn.get_execution_options().get("write") else "DEFERRED"
        conn.connection.dbapi_connection.execute(f"BEGIN {mode}")  # type: ignore[union-attr]


def _alembic_config(conn: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option(
        "script_location", str(resources.files("openmfa.store").joinpath("migrations"))
    )
    cfg.attributes["connection"] = conn
    return cfg


def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(resources.files("openmfa.store").joinpath("migrations")))


@functools.cache
def head_revision() -> str:
    """This release's schema head (its migration scripts are read once per process)."""
    head = _scripts().get_current_head()
    assert head is not None
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    return frozenset(r.revision for r in _scripts().walk_revisions())


def migrate(engine: Engine) -> None:
    """Bring the schema to this release's head revision."""
    from alembic import command

    with engine.connect() as conn:
        # One write transaction (on SQLite: BEGIN IMMEDIATE). A serving node's writers wait
        # for it; a deferred one would fail with "database is locked" as soon as one of them
        # committed between the migration's first read and its first write.
        conn = conn.execution_options(write=True)
        with conn.begin():
            command.upgrade(_alembic_config(conn), "head")


class WriteLock:
    """Held around every SQLite write transaction of one process (re-entrant).

    Writers of one process queue here and each is woken as soon as the one before it commits.
    Left to SQLite's busy handler they sleep 1, 2, 5, 10 ms... between tries, and a farm
    master's commit thread and the claims of its subordinates collide on nearly every batch.
    Waiting is bounded as SQLite's is: after ``BUSY_SECONDS`` the write fails with a message.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> None:
        if not self._lock.acquire(timeout=BUSY_SECONDS):
            raise StoreError(
                f"the data file stayed locked by another writer of this process for "
                f"{BUSY_SECONDS:.0f} s; try again, and check the node's log"
            )

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


_GENERATION = select(func.coalesce(func.max(t.changes.c.seq), 0))
"""Built once: every SDK call reads the generation (its API key check)."""


class Store:
    """An open data file: the engine, the key, and who we are."""

    def __init__(self, engine: Engine, box: SecretBox, node_name: str, data_dir: DataDir) -> None:
        self.engine = engine
        self.box = box
        self.node_name = node_name
        self.data_dir = data_dir
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.write_lock: AbstractContextManager[Any] = (
            WriteLock() if self.is_sqlite else nullcontext()
        )

    # -- life cycle -------------------------------------------------------------------------

    @classmethod
    def create(cls, data_dir: DataDir, config: Config) -> Store:
        """Make a new data file and key file. Refuses if either exists."""
        is_sqlite = not config.get("store", "url")
        if is_sqlite and data_dir.data_file.exists():
            raise DataFileExists(
                f"data file {data_dir.data_file} exists already; nothing was changed "
                "(use `openmfa init --force` to back it up and start over)"
            )
        if data_dir.key_file.exists():
            raise DataFileExists(
                f"key file {data_dir.key_file} exists already; nothing was changed "
                "(use `openmfa init --force` to back it up and start over)"
            )
        data_dir.root.mkdir(parents=True, exist_ok=True)
        engine = engine_for(data_dir, config)
        if not is_sqlite and _has_tables(engine):
            engine.dispose()
            raise DataFileExists(
                "the PostgreSQL database in [store] url already holds an OpenMFA data set; "
                "nothing was changed (point url at an empty database)"
            )
        create_key_file(data_dir.key_file)
        box = SecretBox(read_key_file(data_dir.key_file))
        migrate(engine)
        now = time.time()
        with engine.begin() as conn:
            conn.execute(
                insert(t.meta),
                [
                    {"key": "data_format", "value": str(DATA_FORMAT)},
                    {"key": "created_at", "value": repr(now)},
                    {"key": "key_check", "value": box.check_value().hex()},
                ],
            )
        return cls(engine, box, _node_name(config), data_dir)

    @classmethod
    def open(cls, data_dir: DataDir, config: Config | None = None) -> Store:
        """Open an existing data file after checking format, schema and key."""
        config = config or data_dir.config()
        if not config.get("store", "url") and not data_dir.data_file.exists():
            raise DataFileMissing(
                f"no data file at {data_dir.data_file}; run `openmfa init --data-dir "
                f"{data_dir.root}` to create one, or pass the right --data-dir"
            )
        engine = engine_for(data_dir, config)
        try:
            check_format(engine)
            box = SecretBox(read_key_file(data_dir.key_file))
            with engine.connect() as conn:
                check = conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "key_check"))
            if check is None or not box.matches(bytes.fromhex(check)):
                raise KeyFileError(
                    f"key file {data_dir.key_file} does not belong to this data file; put back "
                    "the key file that was created with it (see your backups)"
                )
        except Exception:
            engine.dispose()
            raise
        return cls(engine, box, _node_name(config), data_dir)

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (on SQLite: holds the write lock from its first statement)."""
        with self.write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(write=True)
            conn.info[formats.BOX] = self.box  # for data-format steps run by change records
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- facts --------------------------------------------------------------------------

    @staticmethod
    def generation(conn: Connection) -> int:
        """Sequence number of the newest configuration change: caches key on it."""
        return int(conn.scalar(_GENERATION) or 0)

    def data_format(self) -> int:
        with self.read() as conn:
            return int(
                conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "data_format")) or 0
            )

    def ready(self) -> tuple[bool, str]:
        """(ready, why not): the data file is open, at this release's schema and format."""
        try:
            check_format(self.engine)
        except Exception as exc:
            return False, str(exc)
        return True, "ok"


def check_format(engine: Engine) -> None:
    with engine.connect() as conn:
        if not _has_tables(conn):
            raise DataFileMissing(
                "the data file holds no OpenMFA data (was it created by `openmfa init`?)"
            )
        value = conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "data_format"))
        fmt = int(value or 0)
        lo, hi = READS_FORMATS
        if fmt > hi:
            raise FormatTooNew(
                f"the data file has data format {fmt}, written by a newer OpenMFA release; this "
                f"release reads formats {lo} to {hi}. Nothing was changed. Run the newer release, "
                "or restore a backup taken before the upgrade"
            )
        current = MigrationContext.configure(conn).get_current_revision()
        head = head_revision()
        if current != head:
            known = known_revisions()
            floor = conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "schema.floor"))
            if current is not None and current not in known and floor in known:
                return  # a newer release only added to a schema this one knows: read on
            if current is not None and current not in known:
                raise FormatTooNew(
                    f"the data file's schema revision {current!r} is unknown to this release "
                    "(written by a newer one?). Nothing was changed. Run the newer release, or "
                    "restore a backup taken before the upgrade"
                )
            raise NeedsMigration(
                f"the data file is at schema revision {current}, this release needs {head}; "
                "run `openmfa migrate` (it takes a backup first)"
            )
        if fmt < lo:
            raise NeedsMigration(
                f"data format {fmt} is older than this release reads; migrate first"
            )


def _has_tables(bind: Engine | Connection) -> bool:
    return bool(inspect(bind).has_table("meta"))


def _node_name(config: Config) -> str:
    return str(config.get("server", "node_name") or socket.gethostname())
