"""A backup's files copied once into a private folder, each hashed as it is copied.

Invariant owned here: a restore reads a backup folder (which may have come from another host,
and which others may write) exactly once, file by file, into a new folder of mode 0700 beside
the data; each copy's SHA-256 is taken from the bytes copied and checked against the manifest,
and everything after (the read-back, the destinations, the writes) uses the copies alone. A
file the manifest does not list is not copied, so it is never restored.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from ..errors import BackupFailed


def bad_name(name: str) -> bool:
    """A manifest name that is not a plain relative path inside the backup's folder."""
    parts = PurePosixPath(name).parts
    return (
        not name
        or "\\" in name
        or PurePosixPath(name).is_absolute()
        or any(p in ("..", ".") for p in parts)
        or str(PurePosixPath(*parts)) != name
    )


def copy_hashed(src: Path, dest: Path) -> str:
    """``src`` (not followed if it is a link) to the new file ``dest`` (0600); the SHA-256 of
    the bytes copied."""
    h = hashlib.sha256()
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f, dest.open("xb") as out:
        os.fchmod(out.fileno(), 0o600)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest()


def stage(src: Path, files: dict[str, str], labels: dict[str, str], under: Path) -> Path:
    """Copy each file ``files`` lists (name -> SHA-256) from ``src`` into a new private folder
    in ``under``; its path. BackupFailed naming every file missing or not matching (the folder
    is then gone again)."""
    out = Path(tempfile.mkdtemp(prefix=".restoring-", dir=under))
    problems = []
    try:
        for name, digest in files.items():
            named = f"{name}, {labels[name]}," if name in labels else name
            if bad_name(name) or not isinstance(digest, str):
                problems.append(f"{name!r} is not a file name of a backup")
                continue
            here = src / name
            if not here.is_file() or here.is_symlink():
                problems.append(f"{named} is missing")
                continue
            dest = out / name
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                got = copy_hashed(here, dest)
            except OSError as exc:
                problems.append(f"{named} cannot be read ({exc.strerror or exc})")
                continue
            if got != digest:
                problems.append(f"{named} does not match its checksum (changed or damaged)")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if problems:
        shutil.rmtree(out, ignore_errors=True)
        raise BackupFailed(
            f"backup {src.name} is not good, nothing was changed: " + "; ".join(problems)
        )
    return out
