"""The key files in a backup: copied in, checked, and put back where each belongs.

A backup keeps every key file ``key_files.find`` lists (mode 0600): the data key as
``openmfa.key`` (where every release looks for it), the others in ``keys/``, and an index,
``keys.json``: for each, what it is, its file in the backup, its SHA-256 and where it belongs
(relative to the data directory, or an absolute path outside it). The index and the key files
are in the manifest's ``files`` too, so a release that does not know of them still checks their
checksums, and reads the manifest as before (it takes no field it does not know).

Invariant owned here: every destination is checked before any file is written — one outside
the data directory only where this host's configuration, or the backup's own, resolves that
same key (``key_files``), the release keys only as the installation's ``TRUST_FILE``: keys.json
is not signed, and a backup folder may come from another host. A file is written to a new
private name beside its destination (``mkstemp``: a planted name is never followed), synced,
given the owner of the file it replaces (else of its folder) and moved over it (0600), so none
is ever half written. Only names and paths are said, never a key's contents.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath

from ..errors import BackupFailed
from .database import DATA_FILE, KEY_FILE
from .key_files import CONFIG_NAMES, DATA_KEY, RELEASE_KEYS, Found, KeyFile

INDEX = "keys.json"
FOLDER = "keys"


@dataclass(frozen=True)
class KeptKey:
    id: str
    what: str
    file: str
    """Its file in the backup (relative to the backup's folder)."""
    belongs: str
    sha256: str

    @property
    def inside(self) -> bool:
        return not Path(self.belongs).is_absolute()


LEGACY = KeptKey(DATA_KEY, "the data key", KEY_FILE, KEY_FILE, "")
"""A backup made before keys.json holds the data key alone, as openmfa.key."""


def stored_as(key: KeyFile) -> str:
    return KEY_FILE if key.id == DATA_KEY else f"{FOLDER}/{key.id}"


def private_copy(src: Path, dest: Path) -> Path:
    """``src`` written to a new private name beside ``dest`` (mode 0600 from the start, synced,
    owned as ``dest`` is, else as its folder); its path, for the caller to move over ``dest``."""
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as f:
            shutil.copyfileobj(f, out)
            out.flush()
            os.fchmod(out.fileno(), 0o600)
            _same_owner(out.fileno(), dest)
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def copy_private(src: Path, dest: Path) -> None:
    """``src`` to ``dest``, mode 0600 from the start, synced, then moved in place."""
    tmp = private_copy(src, dest)
    try:
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _same_owner(fd: int, dest: Path) -> None:
    """The owner of the file ``dest`` (else of its folder): a restore run as root leaves the
    service's files its own. Left as it is where this process may not give it away."""
    try:
        st = os.stat(dest, follow_symlinks=False) if dest.exists() else dest.parent.stat()
        mine = os.fstat(fd)
        if (st.st_uid, st.st_gid) != (mine.st_uid, mine.st_gid):
            os.fchown(fd, st.st_uid, st.st_gid)
    except PermissionError:
        pass


def take(
    work: Path, found: Found, sha256: Callable[[Path], str]
) -> tuple[list[KeptKey], list[str]]:
    """Copy each key file of ``found`` that exists into the backup folder ``work``; the index
    entries, and a note for each key file in use that is named but absent."""
    kept: list[KeptKey] = []
    notes: list[str] = []
    for key in found.keys:
        if not key.path.is_file():
            if key.used and key.id != DATA_KEY:  # the data key's absence is the verifier's
                notes.append(f"{key.what} is named but there is no {key.path}: not in the backup")
            continue
        name = stored_as(key)
        dest = work / name
        dest.parent.mkdir(mode=0o700, exist_ok=True)
        try:
            copy_private(key.path, dest)
        except OSError as exc:
            raise BackupFailed(
                f"{key.what} cannot be read at {key.path} ({exc.strerror or exc}): make it "
                "readable to this user (or take the backup as its owner), or stop naming it; "
                "no backup was taken"
            ) from None
        kept.append(KeptKey(key.id, key.what, name, key.belongs, sha256(dest)))
    (work / INDEX).write_text(json.dumps([asdict(k) for k in kept], indent=2, sort_keys=True))
    (work / INDEX).chmod(0o600)
    return kept, notes


def read_index(path: Path) -> list[KeptKey] | None:
    """The key files the backup at ``path`` holds; None for a backup made before key files
    were kept (it holds the data key only). BackupFailed if the index is unreadable."""
    index = path / INDEX
    if not index.exists():
        return None
    try:
        data = json.loads(index.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupFailed(f"{INDEX} of backup {path.name} is unreadable ({exc})") from None
    names = [f.name for f in fields(KeptKey)]
    if not isinstance(data, list):
        raise BackupFailed(f"{INDEX} of backup {path.name} is not a list of key files")
    kept = []
    for n, entry in enumerate(data, 1):
        if (
            not isinstance(entry, dict)
            or sorted(entry) != sorted(names)
            or not all(isinstance(v, str) for v in entry.values())
        ):
            raise BackupFailed(
                f"{INDEX} of backup {path.name}: entry {n} is not {', '.join(names)} as text"
            )
        kept.append(KeptKey(**entry))
    return kept


def check(path: Path, files: dict[str, str]) -> list[str]:
    """Problems of the index against the manifest's checksums (the files' own checksums are
    checked with every other file's)."""
    try:
        kept = read_index(path)
    except BackupFailed as exc:
        return [exc.message]
    if kept is None:
        return []
    problems = []
    if INDEX not in files:
        problems.append(f"{INDEX} is not in the manifest")
    for k in kept:
        if files.get(k.file) != k.sha256:
            problems.append(f"{k.file}, {k.what}, is not in the manifest with its checksum")
        problem = _bad_destination(k)
        if problem:
            problems.append(problem)
    return problems


def labels(path: Path) -> dict[str, str]:
    """File in the backup -> what it is, for the verifier's words (empty when unknown)."""
    try:
        kept = read_index(path)
    except BackupFailed:
        return {}
    return {k.file: k.what for k in kept or ()}


RESERVED = frozenset(
    {DATA_FILE, f"{DATA_FILE}-wal", f"{DATA_FILE}-shm", *CONFIG_NAMES, "manifest.json"}
)
"""Files of the data directory that are never a key file's destination."""


def _bad_destination(k: KeptKey) -> str:
    if k.inside:
        parts = PurePosixPath(k.belongs).parts
        if not parts or ".." in parts or k.belongs in RESERVED:
            return f"{k.file}, {k.what}, belongs at {k.belongs!r}, outside the data directory"
        if (k.id == DATA_KEY) != (k.belongs == KEY_FILE):
            return f"{k.file}, {k.what}, belongs at {k.belongs!r}: only the data key goes there"
    elif k.id == DATA_KEY:
        return f"{k.file}, {k.what}, belongs at {k.belongs!r}: the data key is {KEY_FILE}"
    name = k.file.removeprefix(FOLDER + "/")
    if k.file != KEY_FILE and (name == k.file or not name or "/" in name or name.startswith(".")):
        return f"{k.file}, {k.what}, is not a file of the backup's {FOLDER} folder"
    return ""


def foreign(kept: list[KeptKey], allowed: dict[str, set[str]]) -> list[str]:
    """The key files bound outside the data directory to a place the configuration does not
    name for them. ``allowed``: key id -> the absolute paths this host's configuration, or the
    backup's, resolves it to (the release keys: the installation's ``TRUST_FILE`` alone)."""
    out = []
    for k in kept:
        if k.inside or k.belongs in allowed.get(k.id, ()):
            continue
        where = (
            "the installation's trusted release keys file"
            if k.id == RELEASE_KEYS
            else "where this host's configuration or the backup's names it"
        )
        out.append(
            f"{k.file}, {k.what}, would be written at {k.belongs}, which is not {where}: "
            "refused (put it back by hand if it is yours)"
        )
    return out


def destination(root: Path, k: KeptKey) -> Path:
    return root / k.belongs if k.inside else Path(k.belongs)


def differing(src: Path, root: Path, kept: list[KeptKey]) -> list[str]:
    """Key files at their destinations whose contents differ from the backup's."""
    out = []
    for k in kept:
        dest = destination(root, k)
        if dest.exists() and dest.read_bytes() != (src / k.file).read_bytes():
            out.append(f"{k.what} at {dest}")
    return out


def unwritable(root: Path, kept: list[KeptKey]) -> list[str]:
    """Destinations outside the data directory this process cannot write (checked before
    anything is replaced: a restore does not stop half way for want of a permission)."""
    out = []
    for k in kept:
        if k.inside:
            continue
        dest = destination(root, k)
        place = dest if dest.exists() else dest.parent
        while not place.exists() and place != place.parent:
            place = place.parent
        if not os.access(place, os.W_OK) or (dest.exists() and not dest.is_file()):
            out.append(f"{k.what} cannot be written at {dest}")
    return out


def put_back(src: Path, root: Path, kept: list[KeptKey]) -> list[str]:
    """Each key file of the backup at ``src`` where it belongs (``root``: the data directory);
    what was done, in words."""
    said = []
    for k in kept:
        dest = destination(root, k)
        dest.parent.mkdir(parents=True, exist_ok=True)
        copy_private(src / k.file, dest)
        if k.id == DATA_KEY:
            continue  # the data key always comes back: said with the restore itself
        if k.inside:
            said.append(f"put back {k.what}: {dest}")
        else:
            said.append(f"put back {k.what}: {dest} (outside the data directory)")
    return said
