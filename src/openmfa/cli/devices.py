"""`openmfa device ...`: push devices (phones, or openmfa-authenticator) of a user."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import msgspec
import segno

from ..mobile_url import with_mobile_public_url
from ..node.accounts import Accounts
from ..node.push import PushService
from .common import data_dir_option, fails_cleanly, opened, when


@click.group()
def device() -> None:
    """Activate, list and revoke a user's push devices."""


@device.command("activate")
@click.argument("name")
@click.option("--label", default="", help="A name for the device, shown in lists.")
@click.option("--no-qr", is_flag=True, help="Do not draw the QR code.")
@click.option("--json", "as_json", is_flag=True, help="Print the code as JSON.")
@data_dir_option
@fails_cleanly
def device_activate(name: str, label: str, no_qr: bool, as_json: bool, data_dir: Path) -> None:
    """Print a single-use activation code, its URL, the link that opens the web app and
    activates it, and a QR code of that link (a phone's camera opens it)."""
    with opened(data_dir) as (store, config):
        config = with_mobile_public_url(config, store.data_dir.root)
        code = PushService(store, config, Accounts(store, config)).issue_activation(name, label)
    if as_json:
        click.echo(msgspec.json.encode(code).decode())
        return
    click.echo(f"activation code: {code.code}")
    click.echo(f"activation url:  {code.url}")
    click.echo(f"app link:        {code.qr_text}")
    click.echo(f"valid until:     {when(code.expires_at)} (single use)")
    if not no_qr:
        segno.make(code.qr_text, error="m").terminal(out=sys.stdout, compact=True)


@device.command("list")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
@fails_cleanly
def device_list(name: str, as_json: bool, data_dir: Path) -> None:
    """List a user's activated devices."""
    with opened(data_dir) as (store, config):
        found = PushService(store, config, Accounts(store, config)).list_devices(name)
    if as_json:
        click.echo(json.dumps([msgspec.to_builtins(d) for d in found]))
        return
    for d in found:
        push = "webpush" if d.webpush else "poll"
        click.echo(f"{d.id}  {d.alg:6}  {push:8}  {when(d.created_at)}  {d.label}")


@device.command("revoke")
@click.argument("name")
@click.argument("device_id")
@data_dir_option
@fails_cleanly
def device_revoke(name: str, device_id: str, data_dir: Path) -> None:
    """Revoke a device: its answers are refused from now on, and its offline code too."""
    with opened(data_dir) as (store, config):
        PushService(store, config, Accounts(store, config)).revoke(name, device_id)
    click.echo(f"revoked device {device_id} of {name}")


@device.command("unblock")
@click.argument("name")
@data_dir_option
@fails_cleanly
def device_unblock(name: str, data_dir: Path) -> None:
    """Allow push again for a user who reported a push as fraud."""
    with opened(data_dir) as (store, config):
        was = PushService(store, config, Accounts(store, config)).unblock(name)
    click.echo(f"push {'unblocked' if was else 'was not blocked'} for {name}")
