"""The ``openmfa`` command. Thin: parses, calls the node services, prints.

Exit codes: 0 success; 1 the operation failed (the message says why and what to do);
2 usage error. ``verify`` exits 1 for a rejected code and 3 when it could not decide.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
import segno
from sqlalchemy.exc import SQLAlchemyError

from . import __version__
from .config import Config, default_text
from .core.verification import Reason
from .errors import BackupFailed, DataFileExists, OpenMfaError
from .node import audit as audit_log
from .node.accounts import Accounts
from .node.apikeys import SCOPES, ApiKeys
from .node.authenticator import Attempt, Authenticator
from .node.lock import NodeLock
from .node.passwords import set_password
from .node.policy import verify_policy
from .node.radius_clients import RadiusClients
from .sdk.models import Enrollment, UserView
from .store import formats
from .store.backups import Backups, backup_sqlite
from .store.database import DATA_FORMAT, DataDir, Store, migrate

F = TypeVar("F", bound=Callable[..., Any])


def data_dir_option(fn: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="OPENMFA_DATA_DIR",
        default=Path("var"),
        show_default="$OPENMFA_DATA_DIR, else ./var",
        help="Directory holding the data file, key file and server.toml.",
    )(fn)


def fails_cleanly(fn: F) -> F:
    """Turn our errors into one line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OpenMfaError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            click.echo(
                f"error: the data file could not be used ({reason}); nothing was "
                "changed. Check `openmfa serve` starts, or restore a backup",
                err=True,
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@contextmanager
def _opened(data_dir: Path) -> Iterator[tuple[Store, Config]]:
    """The node's open store and its configuration, closed afterwards."""
    dd = DataDir(data_dir)
    config = dd.config()
    store = Store.open(dd, config)
    try:
        yield store, config
    finally:
        store.close()


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="openmfa")
def main() -> None:
    """OpenMFA Server: self-hosted multi-factor authentication."""


# -- init / serve / migrate --------------------------------------------------------------------


@main.command()
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


@main.command()
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
    from .server import serve as run

    dd = DataDir(data_dir)
    config = dd.config()
    with NodeLock(dd.root).acquire("serve this data directory"):
        store = Store.open(dd, config)
        try:
            run(store, config, listen, "" if radius_listen == "off" else radius_listen)
        finally:
            store.close()


@main.command("migrate")
@data_dir_option
@fails_cleanly
def migrate_cmd(data_dir: Path) -> None:
    """Back up the data file, then bring its schema to this release."""
    dd = DataDir(data_dir)
    config = dd.config()
    from .store.database import engine_for

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


# -- users -------------------------------------------------------------------------------------


@main.group()
def user() -> None:
    """Add, show, change and remove users."""


def _print_user(u: UserView) -> None:
    click.echo(f"name:         {u.name}")
    click.echo(f"display name: {u.display_name}")
    click.echo(f"email:        {u.email}")
    click.echo(f"phone:        {u.phone}")
    click.echo(f"enabled:      {'yes' if u.enabled else 'no'}")
    click.echo(f"created:      {_when(u.created_at)}")
    if u.locked_until:
        click.echo(f"locked until: {_when(u.locked_until)}")
    if u.bypass_until:
        click.echo(f"bypass until: {_when(u.bypass_until)}")


@user.command("add")
@click.argument("name")
@click.option("--email", default="")
@click.option("--phone", default="")
@click.option("--display-name", default="")
@data_dir_option
@fails_cleanly
def user_add(name: str, email: str, phone: str, display_name: str, data_dir: Path) -> None:
    """Add a user."""
    with _opened(data_dir) as (store, config):
        u = Accounts(store, config).add_user(
            name, email=email, phone=phone, display_name=display_name
        )
    click.echo(f"added user {u.name}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@data_dir_option
@fails_cleanly
def user_list(as_json: bool, data_dir: Path) -> None:
    """List users."""
    with _opened(data_dir) as (store, config):
        acc = Accounts(store, config)
        found: list[UserView] = []
        after = ""
        while batch := acc.list_users(limit=1000, after=after):
            found += batch
            after = batch[-1].name
    if as_json:
        click.echo(msgspec.json.encode(found).decode())
        return
    for u in found:
        state = "enabled" if u.enabled else "disabled"
        if u.locked_until:
            state += ", locked"
        click.echo(f"{u.name}\t{state}\t{u.email}")


@user.command("show")
@click.argument("name")
@data_dir_option
@fails_cleanly
def user_show(name: str, data_dir: Path) -> None:
    """Show one user and their methods."""
    with _opened(data_dir) as (store, config):
        acc = Accounts(store, config)
        u = acc.get_user(name)
        found = acc.list_methods(name)
    _print_user(u)
    click.echo(f"methods:      {len(found)}")
    for m in found:
        click.echo(f"  {m.id}  {m.kind}  {m.label}")


def _user_action(name: str, data_dir: Path, action: str) -> None:
    with _opened(data_dir) as (store, config):
        acc = Accounts(store, config)
        if action == "delete":
            acc.delete_user(name)
        elif action == "unlock":
            acc.unlock(name)
        else:
            acc.update_user(name, {"enabled": action == "enable"})
    click.echo(f"{action}d user {name}" if action.endswith("e") else f"{action}ed user {name}")


for _action, _help in (
    ("disable", "Refuse every authentication of a user."),
    ("enable", "Allow a disabled user again."),
    ("delete", "Delete a user and all their methods."),
    ("unlock", "Clear a lockout and the failure count."),
):

    def _make(action: str, help_text: str) -> None:
        @user.command(action, help=help_text)
        @click.argument("name")
        @data_dir_option
        @fails_cleanly
        def _cmd(name: str, data_dir: Path) -> None:
            _user_action(name, data_dir, action)

    _make(_action, _help)


@user.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--remove", is_flag=True, help="Remove the user's password instead.")
@data_dir_option
@fails_cleanly
def user_set_password(name: str, password_stdin: bool, remove: bool, data_dir: Path) -> None:
    """Set the password RADIUS clients with --primary local check (stored as argon2id)."""
    if remove:
        password = None
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with _opened(data_dir) as (store, config):
        set_password(store, Accounts(store, config), name, password)
    click.echo(f"{'removed the' if remove else 'set the'} password of {name}")


# -- methods -----------------------------------------------------------------------------------


@main.group()
def method() -> None:
    """Enroll, list and remove a user's authentication methods."""


@method.command("add")
@click.argument("name")
@click.argument("kind", type=click.Choice(["totp", "hotp", "backup-codes"]))
@click.option("--secret", help="Base32 seed of an existing token (default: a new random one).")
@click.option("--digits", type=click.Choice(["6", "8"]), help="Code length.")
@click.option("--period", type=click.Choice(["30", "60"]), help="TOTP time step in seconds.")
@click.option("--algorithm", type=click.Choice(["SHA1", "SHA256", "SHA512"], case_sensitive=False))
@click.option("--label", default="", help="A name for the device, shown in lists.")
@click.option("--no-qr", is_flag=True, help="Do not draw the QR code.")
@data_dir_option
@fails_cleanly
def method_add(
    name: str,
    kind: str,
    secret: str | None,
    digits: str | None,
    period: str | None,
    algorithm: str | None,
    label: str,
    no_qr: bool,
    data_dir: Path,
) -> None:
    """Enroll a method; prints the otpauth:// URI and QR code, or the backup codes, once."""
    with _opened(data_dir) as (store, config):
        e = Accounts(store, config).enroll(
            name,
            kind,
            secret=secret,
            digits=int(digits) if digits else None,
            period=int(period) if period else None,
            algorithm=algorithm,
            label=label,
        )
    _print_enrollment(e, qr=not no_qr)


def _print_enrollment(e: Enrollment, *, qr: bool) -> None:
    click.echo(f"method id: {e.method.id}")
    if e.backup_codes:
        click.echo("backup codes (each works once; shown only now):")
        for c in e.backup_codes:
            click.echo(f"  {c}")
        return
    click.echo(f"secret:    {e.secret}")
    click.echo(f"uri:       {e.otpauth_uri}")
    if qr and e.otpauth_uri:
        segno.make(e.otpauth_uri, error="m").terminal(out=sys.stdout, compact=True)


@method.command("list")
@click.argument("name")
@data_dir_option
@fails_cleanly
def method_list(name: str, data_dir: Path) -> None:
    """List a user's methods (never their secrets)."""
    with _opened(data_dir) as (store, config):
        found = Accounts(store, config).list_methods(name)
    for m in found:
        extra = (
            f"{m.backup_codes_left} left"
            if m.backup_codes_left is not None
            else f"{m.digits} digits {m.algorithm}" + (f" {m.period}s" if m.kind == "totp" else "")
        )
        click.echo(f"{m.id}\t{m.kind}\t{extra}\t{m.label}")


@method.command("remove")
@click.argument("name")
@click.argument("method_id")
@data_dir_option
@fails_cleanly
def method_remove(name: str, method_id: str, data_dir: Path) -> None:
    """Remove one method of a user."""
    with _opened(data_dir) as (store, config):
        Accounts(store, config).remove_method(name, method_id)
    click.echo(f"removed method {method_id} of {name}")


@method.command("resync")
@click.argument("name")
@click.argument("method_id")
@click.argument("first")
@click.argument("second")
@data_dir_option
@fails_cleanly
def method_resync(name: str, method_id: str, first: str, second: str, data_dir: Path) -> None:
    """Resynchronise an HOTP token from two consecutive codes."""
    with _opened(data_dir) as (store, config):
        ok = Accounts(store, config).resync_hotp(name, method_id, first, second)
    if not ok:
        click.echo(
            "error: the two codes are not consecutive codes of this token within "
            "[policy] hotp_resync_window; press the button twice more and retry",
            err=True,
        )
        sys.exit(1)
    click.echo("resynchronised")


# -- verify / bypass / apikey / audit -----------------------------------------------------------


@main.command()
@click.argument("name")
@click.argument("code")
@data_dir_option
def verify(name: str, code: str, data_dir: Path) -> None:
    """Check a code: exit 0 accepted, 1 rejected (reason printed), 3 could not decide."""
    try:
        with _opened(data_dir) as (store, config):
            from .farm.claims import round_for

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
        text += f" until {_when(decision.locked_until)}"
    click.echo(text)
    sys.exit(1)


@main.command()
@click.argument("name")
@click.option("--seconds", type=int, required=True, help="How long the bypass stays open.")
@data_dir_option
@fails_cleanly
def bypass(name: str, seconds: int, data_dir: Path) -> None:
    """Let the next authentication of NAME within N seconds pass without a code, once."""
    with _opened(data_dir) as (store, config):
        until = Accounts(store, config).grant_bypass(name, seconds)
    click.echo(f"bypass for {name} open until {_when(until)} (one authentication)")


@main.group()
def apikey() -> None:
    """API keys of the Web Service SDK."""


@apikey.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(list(SCOPES)), required=True)
@click.option("--expires-days", type=float, help="The key stops working after this many days.")
@data_dir_option
@fails_cleanly
def apikey_create(name: str, scope: str, expires_days: float | None, data_dir: Path) -> None:
    """Create a key; it is printed once and stored only as a hash."""
    with _opened(data_dir) as (store, _):
        token = ApiKeys(store).create(name, scope, expires_days=expires_days)
    click.echo(token)


@apikey.command("list")
@data_dir_option
@fails_cleanly
def apikey_list(data_dir: Path) -> None:
    """List keys (names and scopes; never the keys)."""
    with _opened(data_dir) as (store, _):
        keys = ApiKeys(store).list()
    now = time.time()
    for k in keys:
        state = (
            "revoked"
            if k.revoked_at
            else "expired"
            if k.expires_at and k.expires_at <= now
            else "active"
        )
        click.echo(f"{k.name}\t{k.scope}\t{state}\tcreated {_when(k.created_at)}")


@apikey.command("revoke")
@click.argument("name")
@data_dir_option
@fails_cleanly
def apikey_revoke(name: str, data_dir: Path) -> None:
    """Revoke a key; a running server refuses it from the next request on."""
    with _opened(data_dir) as (store, _):
        ApiKeys(store).revoke(name)
    click.echo(f"revoked API key {name}")


@main.group()
def radius() -> None:
    """The RADIUS front end."""


@radius.group("client")
def radius_client() -> None:
    """RADIUS clients: the gateways, VPNs and PAM hosts allowed to ask."""


@radius_client.command("add")
@click.argument("name")
@click.option("--address", required=True, metavar="CIDR", help="Source address or network.")
@click.option("--secret", required=True, help="The shared secret (8 characters or more).")
@click.option(
    "--primary",
    type=click.Choice(["none", "local", "ldap", "radius"]),
    default="none",
    show_default=True,
    help="Who checks the password: nobody (the gateway did), the node, LDAP, "
    "or an upstream RADIUS server.",
)
@click.option(
    "--require-message-authenticator",
    type=click.Choice(["yes", "no"]),
    default="yes",
    show_default=True,
    help="Drop Access-Requests without Message-Authenticator (BlastRADIUS).",
)
@click.option(
    "--combined",
    type=click.Choice(["yes", "no"]),
    default="no",
    show_default=True,
    help="Password and code in one User-Password (for gateways without challenges).",
)
@data_dir_option
@fails_cleanly
def radius_client_add(
    name: str,
    address: str,
    secret: str,
    primary: str,
    require_message_authenticator: str,
    combined: str,
    data_dir: Path,
) -> None:
    """Register a RADIUS client; a running server picks it up within a second."""
    with _opened(data_dir) as (store, _):
        RadiusClients(store).add(
            name,
            address,
            secret,
            primary=primary,
            require_ma=require_message_authenticator == "yes",
            combined=combined == "yes",
        )
    click.echo(f"added RADIUS client {name}")


@radius_client.command("list")
@data_dir_option
@fails_cleanly
def radius_client_list(data_dir: Path) -> None:
    """List RADIUS clients (never their secrets)."""
    with _opened(data_dir) as (store, _):
        clients = RadiusClients(store).all()
    for c in clients:
        click.echo(
            f"{c.name}\t{c.network}\tprimary={c.primary}\t"
            f"message-authenticator={'required' if c.require_ma else 'optional'}"
            f"{chr(9) + 'combined' if c.combined else ''}"
        )


@radius_client.command("remove")
@click.argument("name")
@data_dir_option
@fails_cleanly
def radius_client_remove(name: str, data_dir: Path) -> None:
    """Remove a RADIUS client."""
    with _opened(data_dir) as (store, _):
        RadiusClients(store).remove(name)
    click.echo(f"removed RADIUS client {name}")


@main.group()
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
            f"{info.id}\t{_when(info.created_at)}\trelease {info.release}\t"
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
    from .node.control import NodeControl

    dd, backups = _backups(data_dir)
    info = backups.get(backup_id)
    problems = backups.verify(backup_id)
    if problems:
        raise BackupFailed(
            f"backup {backup_id} is not good, nothing was changed: " + "; ".join(problems)
        )
    if not yes:
        click.confirm(
            f"Replace the data in {dd.root} with backup {info.id} "
            f"(taken {_when(info.created_at)})?",
            abort=True,
        )
    node = NodeControl(dd.root, click.echo)
    was_running = node.stop()
    with NodeLock(dd.root).acquire("restore a backup"):
        safety = backups.restore(backup_id)
    click.echo(f"restored {backup_id} and verified it; the state before is backup {safety.id}")
    if was_running:
        node.start(Path(sys.argv[0]).resolve())


def record_option(fn: F) -> F:
    return click.option(
        "--record",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Install record (default $OPENMFA_INSTALL_RECORD, else /etc/openmfa/install.toml).",
    )(fn)


@main.command("install")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Where the installation lives (releases/, current, var/).",
)
@click.option("--from-wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--from-bundle",
    type=click.Path(exists=True, path_type=Path),
    help="An offline bundle from `openmfa bundle create` (no network needed).",
)
@click.option(
    "--components",
    default="server",
    show_default=True,
    help="Comma-separated: server, portal, mobile.",
)
@click.option(
    "--systemd-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write systemd unit files here.",
)
@record_option
@fails_cleanly
def install_cmd(
    root: Path,
    from_wheel: Path | None,
    from_bundle: Path | None,
    components: str,
    systemd_dir: Path | None,
    record: Path | None,
) -> None:
    """Install a release side by side and point `current` at it."""
    from .install.installer import install
    from .install.record import record_path

    if (from_wheel is None) == (from_bundle is None):
        raise click.UsageError("give exactly one of --from-wheel and --from-bundle")
    rec, printed = install(
        root,
        record_path(record),
        wheel=from_wheel,
        bundle=from_bundle,
        components=[c.strip() for c in components.split(",") if c.strip()],
        systemd_dir=systemd_dir,
        say=click.echo,
    )
    click.echo(f"installed OpenMFA {rec.version} in {rec.root}")
    if printed:
        click.echo(printed.rstrip())


@main.command("upgrade")
@click.option("--from-wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--from-bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Say what would be done, change nothing.")
@record_option
@fails_cleanly
def upgrade_cmd(
    from_wheel: Path | None, from_bundle: Path | None, yes: bool, dry_run: bool, record: Path | None
) -> None:
    """Upgrade the installation in place: checks, verified backup, new release beside the old,
    migration, config merge, switch, restart, synthetic authentication; rolls back on failure.
    Run it again after a crash: it resumes."""
    from .install.record import record_path
    from .install.upgrader import JOURNAL, Upgrade

    up = Upgrade(record_path(record), click.echo)
    resuming = (up.root / JOURNAL).exists()
    if not resuming and (from_wheel is None) == (from_bundle is None):
        raise click.UsageError("give exactly one of --from-wheel and --from-bundle")
    if not (yes or dry_run or resuming):
        click.confirm(
            f"Upgrade the OpenMFA installation at {up.root} (now {up.record.version})?", abort=True
        )
    version = up.run(wheel=from_wheel, bundle=from_bundle, dry_run=dry_run)
    if not dry_run:
        click.echo(f"OpenMFA {version} is installed and serving")


@main.command("rollback")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@record_option
@fails_cleanly
def rollback_cmd(yes: bool, record: Path | None) -> None:
    """Undo the last upgrade: the previous release and the data as it was before the upgrade
    (the current data is backed up first)."""
    from .install.record import record_path
    from .install.upgrader import Upgrade

    up = Upgrade(record_path(record), click.echo)
    if not yes:
        click.confirm("Roll back the last upgrade?", abort=True)
    click.echo(f"OpenMFA {up.rollback()} is installed again")


@main.group()
def bundle() -> None:
    """Offline bundles: every wheel a release needs, for hosts without network access."""


@bundle.command("create")
@click.argument("out", type=click.Path(path_type=Path))
@record_option
@fails_cleanly
def bundle_create(out: Path, record: Path | None) -> None:
    """Write the installed release's wheels and a checksum manifest to OUT (.tar.gz or folder)."""
    from .install.record import InstallRecord, record_path
    from .install.releases import create_bundle

    rec = InstallRecord.load(record_path(record))
    create_bundle(rec.release_dir(), rec.version, out)
    click.echo(f"bundle of OpenMFA {rec.version}: {out}")


@main.command("audit")
@click.option("--user", "user_name", help="Only this user's events.")
@click.option("--since", help="ISO 8601 time, e.g. 2026-11-21T10:00:00Z.")
@click.option("--limit", type=int, default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@data_dir_option
@fails_cleanly
def audit_cmd(
    user_name: str | None, since: str | None, limit: int, as_json: bool, data_dir: Path
) -> None:
    """Show the audit log, oldest first."""
    since_ts = None
    if since:
        try:
            since_ts = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise click.BadParameter(
                "use ISO 8601, e.g. 2026-11-21T10:00:00Z", param_hint="--since"
            ) from None
    with _opened(data_dir) as (store, _):
        events = audit_log.query(store, user=user_name, since=since_ts, limit=limit)
    for e in events:
        if as_json:
            click.echo(json.dumps(msgspec.to_builtins(e)))
        else:
            click.echo(
                f"{_when(e.at)}  {e.node}  {e.action:<14} {e.result:<9} {e.reason:<12} "
                f"user={e.user or '-'} client={e.client or '-'} method={e.method_id or '-'}"
                f"{'  request=' + e.request_id if e.request_id else ''}"
            )


from .farm import commands as farm_commands  # noqa: E402 - needs the helpers above

main.add_command(farm_commands.farm)

if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
