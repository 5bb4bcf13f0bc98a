"""Which release may follow which: ``openmfa upgrade`` takes a host from any earlier release
straight to this one, every data-format step in order, or refuses — before anything on the host
changes — naming the release to go through first.

Invariant owned here: a host is only ever moved to a release that reads the data it has (its
data format within the release's ``READS_FORMATS``) from a release that release upgrades from
(``UPGRADES_FROM``). So skipping releases is safe whenever it is allowed, and a downgrade past a
format the data already has is refused the same way (the data could not be read after it).

What a release is asked is read from the release itself once it is installed beside the running
one (``facts_of``): a release newer than the one running the upgrade knows rules this one could
not. Releases from before this module answer from their ``READS_FORMATS`` alone.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ..config import Config
from ..errors import InstallFailed, OpenMfaError
from ..store import tables as t
from ..store.database import DataDir, engine_for
from .releases import COMPLETE


@dataclass(frozen=True)
class Known:
    """A released version, as releases.toml records it."""

    version: str
    data_format: int
    reads: tuple[int, int]


KNOWN: tuple[Known, ...] = (
    Known("0.1.0", 1, (1, 1)),
    Known("0.2.0", 1, (1, 1)),
    Known("0.3.0", 6, (1, 6)),
)
"""Every release so far, oldest first (tests/install/test_compat.py keeps it equal to the
repository's releases.toml)."""

UPGRADES_FROM = "0.1.0"
"""The oldest release this one upgrades from in one step: every data-format step since that
release's format is in this one (``store.formats.STEPS``)."""


def version_key(version: str) -> tuple[int, int, int]:
    """``"0.3.1"`` -> (0, 3, 1), ``"1.0"`` -> (1, 0, 0); a suffix such as ``.dev1`` or
    ``+local`` is ignored."""
    numbers = [int(n) for n in re.findall(r"\d+", version.split("+")[0])[:3]]
    a, b, c = (*numbers, 0, 0, 0)[:3]
    return a, b, c


@dataclass(frozen=True)
class Facts:
    """What a release says of itself."""

    version: str
    reads: tuple[int, int]
    upgrades_from: str | None = None
    """None: a release from before this module, which upgraded from any earlier one."""
    known: tuple[Known, ...] = field(default_factory=tuple)


_ASK = """
import json
from openmfa.store.database import READS_FORMATS
try:
    from openmfa.install import compat
    up = compat.UPGRADES_FROM
    known = [[k.version, k.data_format, list(k.reads)] for k in compat.KNOWN]
except ImportError:
    up, known = None, []
print(json.dumps({"reads": list(READS_FORMATS), "upgrades_from": up, "known": known}))
"""


def facts_of(version: str, python: Path) -> Facts:
    """Ask the release installed with interpreter ``python``; ``InstallFailed`` when it cannot
    answer (a broken environment: its last line of errors is said)."""
    try:
        out = subprocess.run([str(python), "-c", _ASK], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["no output"])[-1]
            raise InstallFailed(f"release {version} could not say which data it reads: {last}")
        said = json.loads(out.stdout)
        lo, hi = said["reads"]
        known = tuple(Known(str(v), int(f), (int(r[0]), int(r[1]))) for v, f, r in said["known"])
        up = said["upgrades_from"]
        return Facts(version, (int(lo), int(hi)), str(up) if up else None, known)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
        raise InstallFailed(
            f"release {version} could not say which data it reads ({type(exc).__name__})"
        ) from None


def check_target(
    root: Path, target: str, installed: str, dd: DataDir | None, install: Callable[[], object]
) -> None:
    """Install ``target`` beside the running release (``install``), ask it, and refuse with
    ``InstallFailed`` — removing it again unless it was there before — when it could not take
    over from ``installed`` with this host's data (``dd``; None on a host without a node).
    Nothing else on the host changes either way."""
    serves_on = f"{installed} serves on, nothing on this host was changed"
    existed = (root / "releases" / target / COMPLETE).exists()
    going_on = False
    try:
        try:
            install()
        except InstallFailed as exc:
            raise InstallFailed(f"{exc.message} ({serves_on})") from None
        facts = facts_of(target, root / "releases" / target / "venv" / "bin" / "python")
        fmt = None
        if dd is not None:
            try:
                fmt = data_format_of(dd, dd.config())
            except OpenMfaError:
                fmt = None  # a config this release cannot read: the backup step says why
        reason = refusal(installed, fmt, facts)
        if reason is not None:
            raise InstallFailed(f"{reason} ({serves_on})")
        going_on = True
    finally:
        if not going_on and not existed:
            shutil.rmtree(root / "releases" / target, ignore_errors=True)


def data_format_of(dd: DataDir, config: Config) -> int | None:
    """The data format of this host's data; None when it has none (a host without a node, or a
    data file not made yet)."""
    if not config.get("store", "url"):
        if not dd.data_file.exists():
            return None
        try:  # read-only: asking changes nothing, not even the file's journal mode
            with contextlib.closing(
                sqlite3.connect(f"file:{dd.data_file}?mode=ro", uri=True)
            ) as db:
                row = db.execute("SELECT value FROM meta WHERE key = 'data_format'").fetchone()
        except sqlite3.Error:
            return None
        return int(row[0]) if row is not None else None
    engine = engine_for(dd, config, pool=False)
    try:
        with engine.connect() as conn:
            value = conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "data_format"))
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return int(value) if value is not None else None


def refusal(installed: str, data_format: int | None, target: Facts) -> str | None:
    """Why ``installed`` (with data of ``data_format``) may not go to ``target`` in one step,
    naming the release to go through first; None when it may."""
    if target.upgrades_from and version_key(installed) < version_key(target.upgrades_from):
        return (
            f"release {target.version} upgrades from {target.upgrades_from} or later, and this "
            f"host runs {installed}: upgrade to {target.upgrades_from} first, then to "
            f"{target.version}"
        )
    if data_format is None:
        return None
    return format_refusal(data_format, target, installed)


def format_refusal(data_format: int, target: Facts, installed: str | None = None) -> str | None:
    """Why ``target`` cannot take data of ``data_format`` (None when it can), naming what to
    do first. ``installed``: the release the host runs, when known (the releases to go through
    are the ones after it)."""
    known = _merged(target.known)
    lo, hi = target.reads
    if data_format > hi:
        readers = [k.version for k in known if k.reads[0] <= data_format <= k.reads[1]]
        if not readers and installed is not None:
            readers = [installed]  # the release that wrote the data reads it, known or not
        choose = f"; choose {readers[0]} or later" if readers else ""
        back = (
            " (`openmfa rollback` goes back to the release before the last upgrade, with the "
            "data as it was then)"
            if installed is not None and version_key(target.version) < version_key(installed)
            else ""
        )
        return (
            f"the data here is at format {data_format}, and release {target.version} reads "
            f"formats {lo} to {hi}: it could not read it, and the data never goes back a "
            f"format{choose}{back}"
        )
    if data_format < lo:
        mine = [k for k in known if installed is not None and k.version == installed]
        if mine and mine[0].data_format >= lo:  # a farm whose data has not moved yet
            return (
                f"the data here is at format {data_format}, and release {target.version} reads "
                f"formats {lo} to {hi}: move the data to format {mine[0].data_format} first "
                "(`openmfa farm finalize` in a farm, `openmfa migrate` on a node alone), then "
                f"upgrade to {target.version}"
            )
        after = version_key(installed) if installed is not None else (0, 0, 0)
        bridges = [
            k
            for k in known
            if k.reads[0] <= data_format
            and k.data_format >= lo
            and after < version_key(k.version) < version_key(target.version)
        ]
        if not bridges:
            return (
                f"the data here is at format {data_format}, and release {target.version} reads "
                f"formats {lo} to {hi}: upgrade through an earlier release first"
            )
        bridge = bridges[-1]
        return (
            f"the data here is at format {data_format}, and release {target.version} reads "
            f"formats {lo} to {hi}: upgrade to {bridge.version} first (it reads format "
            f"{data_format} and moves the data to {bridge.data_format}), then to {target.version}"
        )
    return None


def _merged(theirs: tuple[Known, ...]) -> list[Known]:
    """This release's table and the target's (which may know later releases), oldest first."""
    by_version = {k.version: k for k in (*KNOWN, *theirs)}
    return sorted(by_version.values(), key=lambda k: version_key(k.version))
