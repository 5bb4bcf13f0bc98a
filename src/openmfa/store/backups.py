"""Backups of a node: the data file, every key file of the host (``key_files``: the data key,
the services' keys, the pinned release keys), server.toml and the services' files beside it,
with a manifest.

Invariant owned here: a backup is only called good after it was read back — every file's
SHA-256 matches the manifest (the key files' too, and their index, ``backup_keys``), the copied
data file passes SQLite's integrity check, has the recorded row count in every table and the
recorded data format and schema revision, and the copied key file opens the copied data file.
``restore`` copies the backup once into a private folder (``backup_stage``) and checks and
restores that copy alone; it refuses a backup that fails this, and takes a backup of the current
state before it replaces anything (a data directory, or a database, with no data yet has none to
take: then it refuses to replace any file there that differs from the backup's). That backup
never prunes the one being restored.

PostgreSQL data sets are dumped with ``pg_dump --format=custom`` and checked with
``pg_restore --list``; restoring one runs ``pg_restore --clean`` into the database this host's
``[store] url`` names (``pg_tools``: the password never on a command line).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from .. import __version__
from ..config import CONFIG_NAME, Config
from ..errors import BackupFailed, InvalidInput, NotFound, OpenMfaError
from . import backup_keys, backup_stage, key_files, pg_tools
from . import tables as t
from .crypto import SecretBox, read_key_file
from .database import DATA_FILE, KEY_FILE, DataDir, Store, check_format, engine_for

MANIFEST = "manifest.json"
PG_DUMP = "openmfa.pgdump"


@dataclass
class BackupInfo:
    id: str
    created_at: float
    reason: str
    release: str
    store: str
    data_format: int
    schema_revision: str
    files: dict[str, str] = field(default_factory=dict)
    """file name -> SHA-256"""
    rows: dict[str, int] = field(default_factory=dict)
    path: str = ""


@dataclass
class Restored:
    safety: BackupInfo | None
    """The backup of the state before (None: there was no data to keep)."""
    said: list[str] = field(default_factory=list)
    """Where each key file went, and which ones the backup did not hold (no contents)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's first line (no statement, no url)."""
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]


def _sqlite_facts(db: sqlite3.Connection) -> tuple[int, str, dict[str, int]]:
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    # Table names come from sqlite_master of our own copy, not from outside.
    rows = {n: int(db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}  # noqa: S608
    fmt = db.execute("SELECT value FROM meta WHERE key='data_format'").fetchone()
    rev = db.execute("SELECT version_num FROM alembic_version").fetchone()
    return int(fmt[0]) if fmt else 0, rev[0] if rev else "", rows


class Backups:
    def __init__(self, data_dir: DataDir, config: Config, install_root: Path | None = None) -> None:
        """``install_root``: the installation whose pinned release keys are kept too (None:
        the install record's, when it records this data directory)."""
        self.dd = data_dir
        self.config = config
        self.install_root = install_root
        configured = config.get("backup", "dir")
        self.root = Path(configured) if configured else data_dir.backups
        self.url: str = config.get("store", "url")
        self.notes: list[str] = []
        """What the last ``create`` could not keep, in words."""

    # -- create ----------------------------------------------------------------------------

    def create(self, reason: str = "manual", spare: Path | None = None) -> BackupInfo:
        """Take, verify and record a backup; prune old ones (never the one in ``spare``). Safe
        while the node runs."""
        if not reason.replace("-", "").isalnum():
            raise InvalidInput("a backup reason is letters, digits and dashes")
        now = datetime.now(UTC)
        # Microseconds keep IDs of backups taken within one second in creation order.
        stamp = f"{now:%Y%m%dT%H%M%S}.{now.microsecond:06d}Z"
        backup_id = f"{stamp}-{reason}"
        n = 1
        while (self.root / backup_id).exists():
            n += 1
            backup_id = f"{stamp}-{reason}-{n}"
        work = self.root / f".{backup_id}.partial"
        work.mkdir(parents=True, mode=0o700)
        work.chmod(0o700)  # whatever the umask: it holds the keys
        try:
            info = self._take(work, backup_id, reason)
            (work / MANIFEST).write_text(json.dumps(asdict(info), indent=2, sort_keys=True))
            final = self.root / backup_id
            work.rename(final)  # a backup directory without ".partial" is complete
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        problems = self.verify(backup_id)
        if problems:
            raise BackupFailed(
                f"backup {backup_id} failed its read-back check: " + "; ".join(problems)
            )
        self.prune(spare)
        return self.get(backup_id)

    def _take(self, work: Path, backup_id: str, reason: str) -> BackupInfo:
        files: dict[str, str] = {}
        try:
            if not self.url:
                src = sqlite3.connect(f"file:{self.dd.data_file}?mode=ro", uri=True)
                dest = sqlite3.connect(work / DATA_FILE)
                try:
                    src.backup(dest)
                    fmt, rev, rows = _sqlite_facts(dest)
                finally:
                    dest.close()
                    src.close()
                os.chmod(work / DATA_FILE, 0o600)
                store = "sqlite"
            else:
                fmt, rev, rows = self._pg_facts()
                pg_tools.run(
                    "pg_dump", ["--format=custom", "--file", str(work / PG_DUMP)], self.url
                )
                store = "postgresql"
        except (sqlite3.Error, OSError) as exc:
            raise BackupFailed(f"could not copy the data: {exc}; nothing was changed") from None
        except BackupFailed as exc:
            raise BackupFailed(
                f"could not copy the data: {exc.message}; nothing was changed"
            ) from None
        found = key_files.find(self.dd, self.config, self.install_root)
        for path in found.configs:
            try:
                backup_keys.copy_private(path, work / path.name)
            except OSError as exc:
                raise BackupFailed(
                    f"{path} cannot be read ({exc.strerror or exc}): make it readable to this "
                    "user, or take the backup as its owner; no backup was taken"
                ) from None
        _, missing = backup_keys.take(work, found, _sha256)
        self.notes = found.notes + missing
        for path in sorted(work.rglob("*")):
            if path.is_file():
                files[path.relative_to(work).as_posix()] = _sha256(path)
        return BackupInfo(
            id=backup_id,
            created_at=time.time(),
            reason=reason,
            release=__version__,
            store=store,
            data_format=fmt,
            schema_revision=rev,
            files=files,
            rows=rows,
        )

    def _pg_facts(self) -> tuple[int, str, dict[str, int]]:
        engine = engine_for(self.dd, self.config)
        try:
            with engine.connect() as conn:
                rows = {
                    tb.name: int(conn.scalar(select(func.count()).select_from(tb)) or 0)
                    for tb in t.metadata.sorted_tables
                }
                fmt = conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "data_format"))
                rev = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except SQLAlchemyError as exc:
            raise BackupFailed(f"the database cannot be read ({_reason(exc)})") from None
        finally:
            engine.dispose()
        return int(fmt or 0), str(rev or ""), rows

    def _has_data(self) -> bool:
        """This host holds OpenMFA data (a PostgreSQL database without the meta table holds
        none: a new, empty database to restore into)."""
        if not self.url:
            return self.dd.data_file.exists()
        engine = engine_for(self.dd, self.config)
        try:
            with engine.connect() as conn:
                return inspect(conn).has_table(t.meta.name)
        except SQLAlchemyError as exc:
            raise BackupFailed(
                f"the database of [store] url cannot be reached ({_reason(exc)}); nothing was "
                "changed"
            ) from None
        finally:
            engine.dispose()

    # -- look --------------------------------------------------------------------------------

    def all(self) -> list[BackupInfo]:
        if not self.root.exists():
            return []
        out = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not (path / MANIFEST).exists():
                continue
            out.append(self._load(path))
        return out

    def get(self, backup_id: str) -> BackupInfo:
        """A backup by its ID, or by the path of its folder (copied from another host)."""
        given = Path(backup_id)
        if "/" in backup_id and (given / MANIFEST).is_file():
            return self._load(given.absolute())
        path = self.root / backup_id
        if "/" in backup_id or backup_id.startswith(".") or not (path / MANIFEST).exists():
            raise NotFound(
                f"no backup {backup_id!r} in {self.root}; see `openmfa backup list` (or give "
                "the path of a backup's folder)"
            )
        return self._load(path)

    @staticmethod
    def _load(path: Path) -> BackupInfo:
        try:
            data: dict[str, Any] = json.loads((path / MANIFEST).read_text())
            data["path"] = str(path)
            known = {f.name for f in fields(BackupInfo)}  # a later release may say more
            info = BackupInfo(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError, AttributeError) as exc:
            raise BackupFailed(f"the manifest of {path.name} is unreadable ({exc})") from None
        texts = (info.id, info.reason, info.release, info.store, info.schema_revision)
        if (
            not all(isinstance(v, str) for v in texts)
            or not isinstance(info.files, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in info.files.items())
            or not isinstance(info.rows, dict)
            or info.store not in ("sqlite", "postgresql")
        ):
            raise BackupFailed(f"the manifest of {path.name} is unreadable (a field's kind)")
        return info

    # -- verify ----------------------------------------------------------------------------

    def verify(self, backup_id: str) -> list[str]:
        """Every problem found, in words; an empty list means the backup is good."""
        info = self.get(backup_id)
        path = Path(info.path)
        problems = []
        what = backup_keys.labels(path)
        for name, digest in info.files.items():
            f = path / name
            named = f"{name}, {what[name]}," if name in what else name
            if backup_stage.bad_name(name):
                problems.append(f"{name!r} is not a file name of a backup")
            elif not f.is_file():
                problems.append(f"{named} is missing")
            elif _sha256(f) != digest:
                problems.append(f"{named} does not match its checksum (changed or damaged)")
        return problems or self._read_back(path, info)

    def _read_back(self, path: Path, info: BackupInfo) -> list[str]:
        """The problems of the backup's contents at ``path`` (their checksums are checked)."""
        problems = backup_keys.check(path, info.files)
        if problems:
            return problems
        if info.store == "sqlite":
            return self._verify_sqlite(path, info)
        out = subprocess.run(
            ["pg_restore", "--list", str(path / PG_DUMP)], capture_output=True, text=True
        )
        if out.returncode != 0 or "TABLE DATA" not in out.stdout:
            return [f"pg_restore cannot read the dump: {out.stderr.strip()[:200]}"]
        return []

    @staticmethod
    def _verify_sqlite(path: Path, info: BackupInfo) -> list[str]:
        problems = []
        try:
            db = sqlite3.connect(f"file:{path / DATA_FILE}?mode=ro&immutable=1", uri=True)
            try:
                check = db.execute("PRAGMA integrity_check").fetchone()[0]
                if check != "ok":
                    return [f"the data file fails SQLite's integrity check: {check}"]
                fmt, rev, rows = _sqlite_facts(db)
                key_check = db.execute("SELECT value FROM meta WHERE key='key_check'").fetchone()
            finally:
                db.close()
        except sqlite3.Error as exc:
            return [f"the data file cannot be read: {exc}"]
        if fmt != info.data_format:
            problems.append(f"data format {fmt}, manifest says {info.data_format}")
        if rev != info.schema_revision:
            problems.append(f"schema revision {rev}, manifest says {info.schema_revision}")
        for table, count in info.rows.items():
            if rows.get(table) != count:
                problems.append(f"table {table} has {rows.get(table)} rows, manifest says {count}")
        if (path / KEY_FILE).exists():
            try:
                box = SecretBox(read_key_file(path / KEY_FILE))
                if key_check is None or not box.matches(bytes.fromhex(key_check[0])):
                    problems.append("the key file in the backup does not open its data file")
            except OpenMfaError as exc:
                problems.append(exc.message)
        else:
            problems.append("the key file is not in the backup")
        return problems

    # -- restore ---------------------------------------------------------------------------

    def refusal(self, info: BackupInfo) -> str:
        """Why the backup ``info`` cannot be restored on this host, whatever it holds ("": it
        can)."""
        if info.store == "postgresql" and not self.url:
            return (
                f"backup {info.id} holds a PostgreSQL dump: put server.toml with [store] url "
                f"(the database to restore into) in {self.dd.root} first; nothing was changed"
            )
        return ""

    def restore(self, backup_id: str) -> Restored:
        """Put a verified backup back in place: the data, the configuration files and every key
        file it holds (each where it belongs). The caller holds the node lock."""
        info = self.get(backup_id)
        refused = self.refusal(info)
        if refused:
            raise BackupFailed(refused)
        made = not self.dd.root.exists()
        self.dd.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            with self.staged(info) as src:
                return self.restore_staged(info, src)
        finally:
            if made:
                with contextlib.suppress(OSError):
                    self.dd.root.rmdir()  # refused before any write: as it was

    @contextlib.contextmanager
    def staged(self, info: BackupInfo) -> Iterator[Path]:
        """The backup's files, copied once into a private folder of the data directory and
        checked there (``backup_stage``); removed afterwards."""
        src = Path(info.path)
        stage = backup_stage.stage(src, info.files, backup_keys.labels(src), self.dd.root)
        try:
            problems = self._read_back(stage, info)
            if problems:
                raise BackupFailed(
                    f"backup {info.id} is not good, nothing was changed: " + "; ".join(problems)
                )
            yield stage
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def restore_staged(self, info: BackupInfo, src: Path) -> Restored:
        """``restore`` from the checked private copy ``src`` of the backup ``info``."""
        kept = backup_keys.read_index(src)
        said = []
        if kept is None:
            kept = [backup_keys.LEGACY]
            said.append(
                f"backup {info.id} (release {info.release}) was taken before backups kept the "
                "services' key files: it holds the data key only"
            )
        configs = [n for n in key_files.CONFIG_NAMES if n in info.files]
        refused = backup_keys.foreign(kept, self._destinations(src))
        if refused:
            raise BackupFailed("; ".join(refused) + "; nothing was changed")
        blocked = backup_keys.unwritable(self.dd.root, kept)
        if blocked:
            raise BackupFailed("; ".join(blocked) + "; nothing was changed (run as their owner)")
        if self._keeps_server_toml(info, src):
            configs.remove(CONFIG_NAME)
            said.append(
                f"kept this host's {CONFIG_NAME}: its [store] url names the database restored "
                f"into (the backup's {CONFIG_NAME} names another; it stays in the backup)"
            )
        safety = None
        if self._has_data():
            safety = self.create("before-restore", spare=Path(info.path))
        else:
            self._refuse_replacing(src, kept, configs)
        if info.store == "sqlite":
            tmp = backup_keys.private_copy(src / DATA_FILE, self.dd.data_file)
            try:
                for suffix in ("-wal", "-shm"):
                    Path(f"{self.dd.data_file}{suffix}").unlink(missing_ok=True)
                os.replace(tmp, self.dd.data_file)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        else:
            self._pg_restore(src, safety)
        for name in configs:
            backup_keys.copy_private(src / name, self.dd.root / name)
        said += backup_keys.put_back(src, self.dd.root, kept)
        said += self._lacking(kept)
        engine = engine_for(self.dd, self.dd.config())  # as restored
        try:
            check_format(engine)
        finally:
            engine.dispose()
        Store.open(self.dd).close()  # key and data file belong together again
        return Restored(safety, said)

    def _destinations(self, stage: Path) -> dict[str, set[str]]:
        """Key id -> the absolute paths outside the data directory a key file may go back to:
        where the backup's configuration (staged) or this host's resolves it; the release keys
        only to this installation's trusted release keys file."""
        allowed: dict[str, set[str]] = {}
        staged = DataDir(stage)
        for dd in (staged, self.dd):
            try:
                config = staged.config() if dd is staged else self.config
                found = key_files.find(dd, config, self.install_root)
            except OpenMfaError:
                continue  # unreadable configuration: it names nothing
            for key in found.keys:
                if not key.inside and not key.path.is_relative_to(stage):
                    allowed.setdefault(key.id, set()).add(str(key.path))
        allowed.pop(key_files.RELEASE_KEYS, None)
        pinned = self.install_root
        if pinned is None:
            pinned = key_files.installed_root(self.dd)
        if pinned is not None:
            allowed[key_files.RELEASE_KEYS] = {str(key_files.release_keys_file(pinned))}
        return allowed

    def _keeps_server_toml(self, info: BackupInfo, src: Path) -> bool:
        """A PostgreSQL restore keeps this host's server.toml when its [store] url is not the
        backup's: the data went into the database it names."""
        if info.store != "postgresql" or CONFIG_NAME not in info.files:
            return False
        if not self.dd.config_file.exists():
            return False
        try:
            theirs = str(DataDir(src).config().get("store", "url"))
        except OpenMfaError:
            return True
        return theirs != self.url

    def _refuse_replacing(
        self, src: Path, kept: list[backup_keys.KeptKey], configs: list[str]
    ) -> None:
        """No data here, so no backup of what is here: refuse to replace a file that differs."""
        differ = backup_keys.differing(src, self.dd.root, kept)
        for name in configs:
            here = self.dd.root / name
            if here.exists() and here.read_bytes() != (src / name).read_bytes():
                differ.append(str(here))
        if differ:
            raise BackupFailed(
                f"there is no data file in {self.dd.root}, so the state before the restore "
                "cannot be backed up, and these files differ from the backup's: "
                + "; ".join(differ)
                + ". Move them away first (nothing was changed)"
            )

    def _pg_restore(self, src: Path, safety: BackupInfo | None) -> None:
        try:
            pg_tools.run(
                "pg_restore", ["--clean", "--if-exists", "--no-owner", str(src / PG_DUMP)], self.url
            )
        except BackupFailed as exc:
            before = f"backup {safety.id}" if safety else "no backup (there was no data)"
            raise BackupFailed(
                f"{exc.message}; the state before the restore is in {before}"
            ) from None

    def _lacking(self, kept: list[backup_keys.KeptKey]) -> list[str]:
        """The key files this host's (restored) configuration names that the backup did not
        hold: left as they are."""
        ids = {k.id for k in kept}
        found = key_files.find(self.dd, self.dd.config(), self.install_root)
        out = []
        for key in found.keys:
            if key.id in ids or not (key.used or key.path.exists()):
                continue
            state = "left as it is" if key.path.exists() else "and there is none here"
            out.append(f"not in this backup, {state}: {key.what}, {key.path}")
        return out

    def prune(self, spare: Path | None = None) -> list[str]:
        """Remove the oldest backups beyond [backup] keep; never the one at ``spare``."""
        keep = int(self.config.get("backup", "keep"))
        found = self.all()
        doomed = [
            info
            for info in found[: max(0, len(found) - keep)]
            if spare is None or Path(info.path).resolve() != spare.resolve()
        ]
        for info in doomed:
            shutil.rmtree(info.path, ignore_errors=True)
        return [i.id for i in doomed]


def backup_sqlite(source: Path, dest: Path) -> None:
    """Copy one SQLite file with the online backup API and check the copy's integrity."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
            ok = out.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            out.close()
    finally:
        src.close()
    if ok != "ok":
        raise BackupFailed(f"the copy at {dest} failed its integrity check: {ok}")
