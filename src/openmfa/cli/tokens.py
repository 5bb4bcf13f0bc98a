"""`openmfa token ...`: the OATH token inventory (import PSKC or CSV files, list, assign)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import msgspec

from ..node.tokens import Tokens, file_secret, guess_format, read_file
from .common import data_dir_option, fails_cleanly, opened, when


@click.group()
def token() -> None:
    """Import hardware and software OATH tokens, list them, assign them to users."""


@token.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["pskc", "csv", "privacyidea"]),
    help="Default: by content. privacyidea: `pi-tokenjanitor find export --format pi`.",
)
@click.option(
    "--assign-by",
    type=click.Choice(["serial", "user"]),
    default="serial",
    show_default=True,
    help="serial: keep every token in the inventory, to be assigned or claimed by its serial; "
    "user: make each token the method of the user the file names (others stay in the "
    "inventory).",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the encrypted file's password (PSKC with PBKDF2) from standard input; for a "
    "PSKC file encrypted with a pre-shared key, the key in hexadecimal; for a privacyIDEA "
    "export, the key it printed.",
)
@click.option(
    "--create-users",
    is_flag=True,
    help="With --assign-by user: add the users the file names that are not here yet.",
)
@click.option("--dry-run", is_flag=True, help="Check the file and say what it would do.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON document.")
@data_dir_option
@fails_cleanly
def token_import(
    file: Path,
    fmt: str | None,
    assign_by: str,
    password_stdin: bool,
    create_users: bool,
    dry_run: bool,
    as_json: bool,
    data_dir: Path,
) -> None:
    """Import the tokens of FILE (PSKC, RFC 6030; CSV with a header row: serial, secret, type,
    digits, period, algorithm, counter, user; or privacyIDEA's own export). All of the file or
    nothing."""
    raw = file.read_bytes()
    fmt = fmt or guess_format(file.name, raw)
    given = sys.stdin.readline().rstrip("\r\n") if password_stdin else ""
    secret = file_secret(raw, fmt, given)
    records = read_file(raw, fmt, secret)
    with opened(data_dir) as (store, config):
        report = Tokens(store, config).import_records(
            records, assign_by=assign_by, create_users=create_users, dry_run=dry_run
        )
    if as_json:
        click.echo(msgspec.json.encode(report).decode())
        return
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb} {len(report.added)} of {len(records)} tokens from {file.name}")
    for user in report.created:
        click.echo(f"  user      {user} added")
    for serial, user in sorted(report.assigned.items()):
        click.echo(f"  assigned  {serial} -> {user}")
    for serial in report.duplicates:
        click.echo(f"  duplicate {serial}: a token with this serial is in the inventory; kept")
    for serial, user in sorted(report.unmatched.items()):
        click.echo(f"  unmatched {serial}: no user named {user!r}; left in the inventory")


@token.command("list")
@click.option("--unassigned", is_flag=True, help="Only tokens not yet given to anyone.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@data_dir_option
@fails_cleanly
def token_list(unassigned: bool, as_json: bool, data_dir: Path) -> None:
    """List the token inventory (never a seed)."""
    with opened(data_dir) as (store, config):
        inventory = Tokens(store, config)
        found = []
        after = ""
        while batch := inventory.inventory(unassigned=unassigned, after=after):
            found += batch
            after = batch[-1].serial
    if as_json:
        click.echo(msgspec.json.encode(found).decode())
        return
    for tk in found:
        who = tk.user or "(unassigned)"
        shape = f"{tk.kind}/{tk.digits}" + (f"/{tk.period}s" if tk.kind == "totp" else "")
        click.echo(f"{tk.serial}\t{shape}\t{tk.algorithm}\t{who}\t{when(tk.imported_at)}")


@token.command("assign")
@click.argument("serial")
@click.argument("user")
@data_dir_option
@fails_cleanly
def token_assign(serial: str, user: str, data_dir: Path) -> None:
    """Give the inventory token SERIAL to USER (it becomes one of their methods)."""
    with opened(data_dir) as (store, config):
        m = Tokens(store, config).assign(serial, user)
    click.echo(f"token {serial} is {user}'s method {m.id} ({m.kind})")


@token.command("remove")
@click.argument("serial")
@data_dir_option
@fails_cleanly
def token_remove(serial: str, data_dir: Path) -> None:
    """Remove a free token from the inventory (an assigned one: remove the method first)."""
    with opened(data_dir) as (store, config):
        Tokens(store, config).remove(serial)
    click.echo(f"removed token {serial}")
