"""`openmfa method ...`: sign-in methods (TOTP, HOTP, backup codes)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import segno

from ..node.accounts import Accounts
from ..sdk.models import Enrollment
from .common import data_dir_option, fails_cleanly, opened


@click.group()
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
    with opened(data_dir) as (store, config):
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
    with opened(data_dir) as (store, config):
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
    with opened(data_dir) as (store, config):
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
    with opened(data_dir) as (store, config):
        ok = Accounts(store, config).resync_hotp(name, method_id, first, second)
    if not ok:
        click.echo(
            "error: the two codes are not consecutive codes of this token within "
            "[policy] hotp_resync_window; press the button twice more and retry",
            err=True,
        )
        sys.exit(1)
    click.echo("resynchronised")
