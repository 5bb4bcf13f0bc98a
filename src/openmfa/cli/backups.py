"""`openmfa backup ...`: verified backups and restores."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import BackupFailed
from ..node.lock import NodeLock
from ..store.backups import Backups
from ..store.database import DataDir
from .common import data_dir_option, fails_cleanly, when


@click.group()
def backup() -> None:
    """Backups of the data file, key file and configuration (verified by reading back)."""


def _backups(data_dir: Path) -> tuple[DataDir, Backups]:
    dd = DataDir(data_dir)
    return dd, Backups(dd, dd.config())


@backup.command("create")
@click.option("--reason", default="manual", show_default=True, help="A word kept in the ID.")
@data_dir_option
@fails_cleanly
def backup_create(reason: str, data_dir: Path) -> None:
    """Take a backup (safe while the node runs), verify it, prune beyond [backup] keep."""
    _, backups = _backups(data_dir)
    info = backups.create(reason)
    click.echo(f"{info.id}\tverified\t{info.path}")


@backup.command("list")
@data_dir_option
@fails_cleanly
def backup_list(data_dir: Path) -> None:
    """One backup a line, its ID first."""
    _, backups = _backups(data_dir)
    for info in backups.all():
        click.echo(
            f"{info.id}\t{when(info.created_at)}\trelease {info.release}\t"
            f"format {info.data_format}\t{info.store}\t"
            f"{sum(info.rows.get(n, 0) for n in ('users',))} users"
        )


@backup.command("verify")
@click.argument("backup_id")
@data_dir_option
@fails_cleanly
def backup_verify(backup_id: str, data_dir: Path) -> None:
    """Read a backup back: checksums, integrity, row counts, format, key."""
    _, backups = _backups(data_dir)
    problems = backups.verify(backup_id)
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    click.echo(f"{backup_id}: good")


@backup.command("restore")
@click.argument("backup_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@data_dir_option
@fails_cleanly
def backup_restore(backup_id: str, yes: bool, data_dir: Path) -> None:
    """Put a backup back. A running node is stopped first (no writes during the restore) and
    started again afterwards; the current state is backed up first."""
    from ..node.control import NodeControl

    dd, backups = _backups(data_dir)
    info = backups.get(backup_id)
    problems = backups.verify(backup_id)
    if problems:
        raise BackupFailed(
            f"backup {backup_id} is not good, nothing was changed: " + "; ".join(problems)
        )
    if not yes:
        click.confirm(
            f"Replace the data in {dd.root} with backup {info.id} (taken {when(info.created_at)})?",
            abort=True,
        )
    node = NodeControl(dd.root, click.echo)
    was_running = node.stop()
    with NodeLock(dd.root).acquire("restore a backup"):
        safety = backups.restore(backup_id)
    click.echo(f"restored {backup_id} and verified it; the state before is backup {safety.id}")
    if was_running:
        node.start(Path(sys.argv[0]).resolve())
