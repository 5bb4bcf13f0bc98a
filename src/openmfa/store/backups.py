"""Backups of a node: the data file, every key file of the host (``key_files``: the data key,
the services' keys, the pinned release keys), server.toml and the services' files beside it,
with a manifest.

Invariant owned here: a backup is only called good after it was read back — every file's
SHA-256 matches the manifest (the key files' too, and their index, ``backup_keys``), the copied
data file passes SQLite's integrity check, has the recorded row count in every table and the
recorded data format and schema revision, and the copied key file opens the copied data file.
``restore`` refuses a backup that fails this, and takes a backup of the current state before it
replaces anything (a data directory with no data yet has none to take: then it refuses to
replace any file there that differs from the backup's).

PostgreSQL data sets are dumped with ``pg_dump --format=custom`` and checked with
``pg_restore --list``; restoring one runs ``pg_restore --clean``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from .. import __version__
from ..config import Config
from ..errors import BackupFailed, InvalidInput, NotFound, OpenMfaError
from . import backup_keys, key_files
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


def _fsync_copy(src: Path, dest: Path, mode: int | None = None) -> None:
    shutil.copyfile(src, dest)
    if mode is not None:
        dest.chmod(mode)
    with dest.open("rb+") as f:
        os.fsync(f.fileno())


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

    def create(self, reason: str = "manual") -> BackupInfo:
        """Take, verify and record a backup; prune old ones. Safe while the node runs."""
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
        self.prune()
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
                subprocess.run(
                    [
                        "pg_dump",
                        "--format=custom",
                        "--file",
                        str(work / PG_DUMP),
                        "--dbname",
                        self.url,
                    ],
                    check=True,
                    capture_output=True,
                    timeout=3600,
                )
                store = "postgresql"
        except (sqlite3.Error, OSError, subprocess.SubprocessError) as exc:
            raise BackupFailed(f"could not copy the data: {exc}; nothing was changed") from None
        found = key_files.find(self.dd, self.config, self.install_root)
        for path in found.configs:
            backup_keys.copy_private(path, work / path.name)
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
        finally:
            engine.dispose()
        return int(fmt or 0), str(rev or ""), rows

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
            return BackupInfo(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError) as exc:
            raise BackupFailed(f"the manifest of {path.name} is unreadable ({exc})") from None

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
            if not f.is_file():
                problems.append(f"{named} is missing")
            elif _sha256(f) != digest:
                problems.append(f"{named} does not match its checksum (changed or damaged)")
        if problems:
            return problems
        problems += backup_keys.check(path, info.files)
        if problems:
            return problems
        if info.store == "sqlite":
            problems += self._verify_sqlite(path, info)
        else:
            out = subprocess.run(
                ["pg_restore", "--list", str(path / PG_DUMP)], capture_output=True, text=True
            )
            if out.returncode != 0 or "TABLE DATA" not in out.stdout:
                problems.append(f"pg_restore cannot read the dump: {out.stderr.strip()[:200]}")
        return problems

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

    def restore(self, backup_id: str) -> Restored:
        """Put a verified backup back in place: the data, the configuration files and every key
        file it holds (each where it belongs). The caller holds the node lock."""
        info = self.get(backup_id)
        problems = self.verify(backup_id)
        if problems:
            raise BackupFailed(
                f"backup {backup_id} is not good, nothing was changed: " + "; ".join(problems)
            )
        src = Path(info.path)
        kept = backup_keys.read_index(src)
        said = []
        if kept is None:
            kept = [backup_keys.LEGACY]
            said.append(
                f"backup {info.id} (release {info.release}) was taken before backups kept the "
                "services' key files: it holds the data key only"
            )
        configs = [n for n in key_files.CONFIG_NAMES if (src / n).is_file()]
        blocked = backup_keys.unwritable(self.dd.root, kept)
        if blocked:
            raise BackupFailed("; ".join(blocked) + "; nothing was changed (run as their owner)")
        safety = None
        if self.url or self.dd.data_file.exists():
            safety = self.create("before-restore")
        else:
            self._refuse_replacing(src, kept, configs)
        self.dd.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if info.store == "sqlite":
            tmp = self.dd.data_file.with_name(DATA_FILE + ".restoring")
            _fsync_copy(src / DATA_FILE, tmp, 0o600)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.dd.data_file}{suffix}").unlink(missing_ok=True)
            os.replace(tmp, self.dd.data_file)
        else:
            self._pg_restore(src, safety)
        for name in configs:
            backup_keys.copy_private(src / name, self.dd.root / name)
        said += backup_keys.put_back(src, self.dd.root, kept)
        said += self._lacking(kept)
        engine = engine_for(self.dd, self.config)
        try:
            check_format(engine)
        finally:
            engine.dispose()
        Store.open(self.dd).close()  # key and data file belong together again
        return Restored(safety, said)

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
        out = subprocess.run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--dbname",
                self.url,
                str(src / PG_DUMP),
            ],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            before = f"backup {safety.id}" if safety else "no backup (there was no data)"
            raise BackupFailed(
                f"pg_restore failed: {out.stderr.strip()[:300]}; the state "
                f"before the restore is in {before}"
            )

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

    def prune(self) -> list[str]:
        keep = int(self.config.get("backup", "keep"))
        found = self.all()
        doomed = found[: max(0, len(found) - keep)]
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
