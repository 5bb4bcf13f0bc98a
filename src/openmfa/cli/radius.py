"""`openmfa radius client ...`: the gateways that may ask over RADIUS."""

from __future__ import annotations

from pathlib import Path

import click

from ..node.radius_clients import REPLY_ATTRIBUTES_DEFAULT, RadiusClient, RadiusClients
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
    type=click.Choice(["none", "local", "ldap", "radius", "ntlm"]),
    default="none",
    show_default=True,
    help="Who checks the password: nobody (the gateway did), the node, LDAP, an upstream "
    "RADIUS server, or Active Directory through ntlm_auth (MS-CHAPv2 only; [ntlm]).",
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
    help="With --push hold, and for MS-CHAPv2 and EAP: the longest a request is held for the "
    "phone's answer (keep it below the client's timeout).",
)
@click.option(
    "--mschap",
    type=click.Choice(["yes", "no"]),
    default="no",
    show_default=True,
    help="Accept MS-CHAPv2 (VPNs): checked by the upstream RADIUS server (--primary radius) or "
    "Active Directory (--primary ntlm), then an approve-only push held until the phone answers.",
)
@click.option(
    "--eap",
    type=click.Choice(["off", "relay"]),
    default="off",
    show_default=True,
    help="EAP (PEAP, EAP-TTLS, EAP-TLS; Wi-Fi): relay the conversation to the upstream RADIUS "
    "server (needs --primary radius), then a held push before the Access-Accept.",
)
@click.option(
    "--reply-attributes",
    default=REPLY_ATTRIBUTES_DEFAULT,
    metavar="LIST",
    help="What the upstream's Access-Accept may pass on to this client (MS-CHAPv2 and EAP): "
    "attribute names or numbers, Vendor-Specific:VENDOR-ID for one vendor, 'none' for nothing. "
    "[default: Class, Session-Timeout, Idle-Timeout, Termination-Action, Framed-*, Filter-Id, "
    "Acct-Interim-Interval, Tunnel-* (VLAN), Vendor-Specific]",
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
    mschap: str,
    eap: str,
    reply_attributes: str,
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
            mschap=mschap == "yes",
            eap=eap,
            reply_attributes=reply_attributes,
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
            f"\tpush={c.push}{f' hold={c.hold_seconds:g}s' if held(c) else ''}"
            f"{chr(9) + 'mschap' if c.mschap else ''}"
            f"{chr(9) + 'eap=' + c.eap if c.eap != 'off' else ''}"
            f"{chr(9) + 'reply=' + reply_list(c) if relays(c) else ''}"
        )


def reply_list(c: RadiusClient) -> str:
    if ",".join(c.reply_attributes) == REPLY_ATTRIBUTES_DEFAULT:
        return "default"
    return ",".join(c.reply_attributes) or "none"


def relays(c: RadiusClient) -> bool:
    return c.mschap or c.eap != "off"


def held(c: RadiusClient) -> bool:
    return c.push == "hold" or relays(c)


@radius_client.command("remove")
@click.argument("name")
@data_dir_option
@fails_cleanly
def radius_client_remove(name: str, data_dir: Path) -> None:
    """Remove a RADIUS client."""
    with opened(data_dir) as (store, _):
        RadiusClients(store).remove(name)
    click.echo(f"removed RADIUS client {name}")
