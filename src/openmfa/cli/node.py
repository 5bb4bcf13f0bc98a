"""`openmfa init|serve|migrate|verify|bypass|audit`: the node and its data file."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import msgspec

from .. import __version__
from ..config import default_text
from ..core.verification import Reason
from ..errors import DataFileExists, InstallFailed, OpenMfaError
from ..node import audit as audit_log
from ..node.accounts import Accounts
from ..node.apikeys import ApiKeys
from ..node.authenticator import Attempt, Authenticator
from ..node.lock import NodeLock
from ..node.policy import verify_policy
from ..store import formats
from ..store.backups import Backups, backup_sqlite
from ..store.database import DATA_FORMAT, DataDir, Store, migrate
from .common import data_dir_option, fails_cleanly, opened, when


@click.command()
@data_dir_option
@click.option(
    "--force",
    is_flag=True,
    help="Start over: back up the existing data file, key file and config first.",
)
@fails_cleanly
def init(data_dir: Path, force: bool) -> None:
    """Create the data file, key file (0600) and server.toml; print the first admin key."""
    dd = DataDir(data_dir)
    if force and dd.config().get("store", "url"):
        raise DataFileExists(
            "--force works on the SQLite data file only; with PostgreSQL, take a pg_dump, "
            "then point [store] url at an empty database"
        )
    if force and (dd.data_file.exists() or dd.key_file.exists()):
        dest = dd.backups / (datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-before-init")
        dest.mkdir(parents=True)
        if dd.data_file.exists():
            backup_sqlite(dd.data_file, dest / dd.data_file.name)
        for path in (dd.key_file, dd.config_file):
            if path.exists():
                shutil.copy2(path, dest / path.name)
        for path in (
            dd.data_file,
            dd.key_file,
            Path(f"{dd.data_file}-wal"),
            Path(f"{dd.data_file}-shm"),
        ):
            path.unlink(missing_ok=True)
        click.echo(f"backed up the previous node to {dest}")
    dd.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = Store.create(dd, dd.config())
    try:
        token = ApiKeys(store).create("admin", "admin")
    finally:
        store.close()
    if dd.data_file.exists():
        dd.data_file.chmod(0o600)
    if not dd.config_file.exists():
        dd.config_file.write_text(default_text(), "utf-8")
    click.echo(f"created data file {dd.data_file}")
    click.echo(
        f"created key file  {dd.key_file} (mode 0600; back it up: without it the "
        "enrolled secrets cannot be read)"
    )
    click.echo(f"configuration     {dd.config_file}")
    click.echo("\nFirst admin API key (shown once; store it now):\n")
    click.echo(f"  {token}\n")


@click.command()
@data_dir_option
@click.option("--listen", metavar="HOST:PORT", help="Override [server] listen for this run.")
@click.option(
    "--radius-listen",
    metavar="HOST:PORT",
    help="Override [radius] listen for this run ('off' turns RADIUS off).",
)
@fails_cleanly
def serve(data_dir: Path, listen: str | None, radius_listen: str | None) -> None:
    """Run the node: the Web Service SDK over HTTP(S). Stops gracefully on SIGTERM."""
    from ..node.control import wait_at_gate
    from ..server import serve as run

    wait_at_gate()  # started ahead by a restart: from here on it is quick (control.start_ahead)
    dd = DataDir(data_dir)
    config = dd.config()
    with NodeLock(dd.root).acquire("serve this data directory"):
        store = Store.open(dd, config)
        try:
            run(store, config, listen, "" if radius_listen == "off" else radius_listen)
        finally:
            store.close()


@click.command("migrate")
@data_dir_option
@fails_cleanly
def migrate_cmd(data_dir: Path) -> None:
    """Back up the data file, then bring its schema to this release."""
    dd = DataDir(data_dir)
    config = dd.config()
    from ..install import compat
    from ..store.database import READS_FORMATS, engine_for

    # An older release's `openmfa upgrade` does not ask this release first (install/compat.py):
    # here, before anything changes, data this release cannot read is refused all the same,
    # naming what to do, and that upgrade rolls back.
    fmt = compat.data_format_of(dd, config)
    me = compat.Facts(__version__, READS_FORMATS, compat.UPGRADES_FROM, compat.KNOWN)
    why = compat.format_refusal(fmt, me) if fmt is not None else None
    if why is not None:
        raise InstallFailed(f"{why}. Nothing was changed")
    if config.get("store", "url") or dd.data_file.exists():
        taken = Backups(dd, config).create("before-migrate")
        click.echo(f"backed up the data file: backup {taken.id} (verified)")
    engine = engine_for(dd, config)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    store = Store.open(dd, config)
    try:
        click.echo("the data file is at this release's schema")
        click.echo(_move_format(store))
    finally:
        store.close()


def _move_format(store: Store) -> str:
    with store.write() as conn:
        moved = formats.forward_alone(conn)
    if moved is None:
        fmt = store.data_format()
        if fmt >= DATA_FORMAT:
            return f"data format {fmt}"
        return (
            f"data format {fmt}: this node is in a farm, so its data moves to format "
            f"{DATA_FORMAT} when every node runs a release that reads it and you run "
            "`openmfa farm finalize` (until then the previous release can still take over)"
        )
    before, after = moved
    return f"data format {after}" if before == after else f"data format {before} -> {after}"


@click.command()
@click.argument("name")
@click.argument("code")
@data_dir_option
def verify(name: str, code: str, data_dir: Path) -> None:
    """Check a code: exit 0 accepted, 1 rejected (reason printed), 3 could not decide."""
    try:
        with opened(data_dir) as (store, config):
            from ..farm.claims import round_for

            auth = Authenticator(store, verify_policy(config), round=round_for(store, config))
            try:
                (decision,) = auth.run([Attempt(name, code)])
            finally:
                auth.close()
    except OpenMfaError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(3)
    assert not isinstance(decision, OpenMfaError)
    if decision.accepted:
        click.echo(f"accepted ({decision.reason})")
        return
    text = f"rejected: {decision.reason}"
    if decision.reason == Reason.LOCKED and decision.locked_until:
        text += f" until {when(decision.locked_until)}"
    click.echo(text)
    sys.exit(1)


@click.command()
@click.argument("name")
@click.option("--seconds", type=int, required=True, help="How long the bypass stays open.")
@data_dir_option
@fails_cleanly
def bypass(name: str, seconds: int, data_dir: Path) -> None:
    """Let the next authentication of NAME within N seconds pass without a code, once."""
    with opened(data_dir) as (store, config):
        until = Accounts(store, config).grant_bypass(name, seconds)
    click.echo(f"bypass for {name} open until {when(until)} (one authentication)")


@click.command("audit")
@click.option("--user", "user_name", help="Only this user's events.")
@click.option("--since", help="ISO 8601 time, e.g. 2026-11-21T10:00:00Z.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Show the newest N events (still oldest first).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@data_dir_option
@fails_cleanly
def audit_cmd(
    user_name: str | None, since: str | None, limit: int, as_json: bool, data_dir: Path
) -> None:
    """Show the audit log, oldest first: the newest --limit events."""
    since_ts = None
    if since:
        try:
            since_ts = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise click.BadParameter(
                "use ISO 8601, e.g. 2026-11-21T10:00:00Z", param_hint="--since"
            ) from None
    with opened(data_dir) as (store, _):
        events = audit_log.query(
            store, user=user_name, since=since_ts, limit=limit, newest_first=True
        )
    for e in reversed(events):
        browser = "/".join(x for x in (e.browser, e.system) if x)
        if as_json:
            click.echo(json.dumps(msgspec.to_builtins(e)))
        else:
            click.echo(
                f"{when(e.at)}  {e.node}  {e.action:<14} {e.result:<9} {e.reason:<12} "
                f"user={e.user or '-'} client={e.client or '-'} method={e.method_id or '-'}"
                f"{'  request=' + e.request_id if e.request_id else ''}"
                f"{'  from=' + e.address if e.address else ''}"
                f"{'  browser=' + browser if browser else ''}"
            )
