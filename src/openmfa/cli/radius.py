"""`openmfa radius client ...`: the gateways that may ask over RADIUS."""

from __future__ import annotations

from pathlib import Path

import click

from ..node.radius_clients import RadiusClients
from .common import data_dir_option, fails_cleanly, opened


@click.group()
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
@click.option(
    "--push",
    type=click.Choice(["challenge", "hold", "off"]),
    default="challenge",
    show_default=True,
    help="For users with a push device: show the number in an Access-Challenge and answer the "
    "follow-up once approved; hold the request until the phone answers; or no push.",
)
@click.option(
    "--hold-seconds",
    type=click.FloatRange(1, 55),
    default=25.0,
    show_default=True,
    help="With --push hold: the longest a request is held (keep it below the client's timeout).",
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
    push: str,
    hold_seconds: float,
    data_dir: Path,
) -> None:
    """Register a RADIUS client; a running server picks it up within a second."""
    with opened(data_dir) as (store, _):
        RadiusClients(store).add(
            name,
            address,
            secret,
            primary=primary,
            require_ma=require_message_authenticator == "yes",
            combined=combined == "yes",
            push=push,
            hold_seconds=hold_seconds,
        )
    click.echo(f"added RADIUS client {name}")


@radius_client.command("list")
@data_dir_option
@fails_cleanly
def radius_client_list(data_dir: Path) -> None:
    """List RADIUS clients (never their secrets)."""
    with opened(data_dir) as (store, _):
        clients = RadiusClients(store).all()
    for c in clients:
        click.echo(
            f"{c.name}\t{c.network}\tprimary={c.primary}\t"
            f"message-authenticator={'required' if c.require_ma else 'optional'}"
            f"{chr(9) + 'combined' if c.combined else ''}"
            f"\tpush={c.push}{f' hold={c.hold_seconds:g}s' if c.push == 'hold' else ''}"
        )


@radius_client.command("remove")
@click.argument("name")
@data_dir_option
@fails_cleanly
def radius_client_remove(name: str, data_dir: Path) -> None:
    """Remove a RADIUS client."""
    with opened(data_dir) as (store, _):
        RadiusClients(store).remove(name)
    click.echo(f"removed RADIUS client {name}")
