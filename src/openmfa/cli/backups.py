"""`openmfa backup ...`: verified backups and restores."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import BackupFailed
from ..node.lock import NodeLock
from ..store.backup_keys import read_index
from ..store.backups import Backups
from ..store.database import DataDir
from .common import data_dir_option, fails_cleanly, when


@click.group()
def backup() -> None:
    """Backups of the data file, every key file of the host and the configuration (verified by
    reading back)."""


def _backups(data_dir: Path, root: Path | None = None) -> tuple[DataDir, Backups]:
    dd = DataDir(data_dir)
    return dd, Backups(dd, dd.config(), install_root=root)


@backup.command("create")
@click.option("--reason", default="manual", show_default=True, help="A word kept in the ID.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The installation whose pinned release keys are kept too (default: the install "
    "record's, when it records this data directory).",
)
@data_dir_option
@fails_cleanly
def backup_create(reason: str, root: Path | None, data_dir: Path) -> None:
    """Take a backup (safe while the node runs), verify it, prune beyond [backup] keep. It holds
    the data, server.toml and the services' files beside it, and every key file they name."""
    _, backups = _backups(data_dir, root)
    info = backups.create(reason)
    click.echo(f"{info.id}\tverified\t{info.path}")
    for k in read_index(Path(info.path)) or ():
        click.echo(f"kept {k.what}: {k.belongs}")
    for note in backups.notes:
        click.echo(f"warning: {note}", err=True)


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
    """Put a backup back (BACKUP_ID, or the path of a backup's folder: to bring a host back on
    an empty data directory): the data, the configuration files and every key file, each where
    it belongs. A running node is stopped first (no writes during the restore) and started
    again afterwards; the current state is backed up first."""
    from ..node.control import NodeControl

    dd, backups = _backups(data_dir)
    info = backups.get(backup_id)
    refused = backups.refusal(info)  # before the node is stopped
    if refused:
        raise BackupFailed(refused)
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
    dd.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new host's empty data directory
    with NodeLock(dd.root).acquire("restore a backup"):
        done = backups.restore(backup_id)
    if done.safety is not None:
        click.echo(
            f"restored {info.id} and verified it; the state before is backup {done.safety.id}"
        )
    else:
        click.echo(f"restored {info.id} into {dd.root} (it held no data before) and verified it")
    for line in done.said:
        click.echo(line)
    if was_running:
        node.start(Path(sys.argv[0]).resolve())
