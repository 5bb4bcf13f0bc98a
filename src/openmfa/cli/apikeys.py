"""`openmfa apikey ...`: least-privilege keys of the Web Service SDK."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..node.apikeys import SCOPES, ApiKeys
from .common import data_dir_option, fails_cleanly, opened, when


@click.group()
def apikey() -> None:
    """API keys of the Web Service SDK."""


@apikey.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(list(SCOPES)), required=True)
@click.option("--expires-days", type=float, help="The key stops working after this many days.")
@click.option(
    "--may-assert-source",
    is_flag=True,
    help="Policy rules believe the source address this key's sign-ins name (only for a caller "
    "that knows it: an application behind your own proxy).",
)
@data_dir_option
@fails_cleanly
def apikey_create(
    name: str, scope: str, expires_days: float | None, may_assert_source: bool, data_dir: Path
) -> None:
    """Create a key; it is printed once and stored only as a hash."""
    with opened(data_dir) as (store, _):
        token = ApiKeys(store).create(
            name, scope, expires_days=expires_days, asserts_source=may_assert_source
        )
    click.echo(token)


@apikey.command("list")
@data_dir_option
@fails_cleanly
def apikey_list(data_dir: Path) -> None:
    """List keys (names and scopes; never the keys)."""
    with opened(data_dir) as (store, _):
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
        asserts = "\tmay assert source" if k.asserts_source else ""
        click.echo(f"{k.name}\t{k.scope}\t{state}\tcreated {when(k.created_at)}{asserts}")


@apikey.command("revoke")
@click.argument("name")
@data_dir_option
@fails_cleanly
def apikey_revoke(name: str, data_dir: Path) -> None:
    """Revoke a key; a running server refuses it from the next request on."""
    with opened(data_dir) as (store, _):
        ApiKeys(store).revoke(name)
    click.echo(f"revoked API key {name}")
