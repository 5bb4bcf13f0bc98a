"""`openmfa oidc ...`: OpenID Connect — the ID-token signing keys, the relying parties
(applications and Microsoft Entra ID's external authentication method) and which person an
Entra account is."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from ..node.oidc_clients import OidcClients
from ..node.oidc_keys import ALGS, OidcKeys
from ..node.oidc_subjects import OidcSubjects
from .common import data_dir_option, fails_cleanly, opened, when


@click.group()
def oidc() -> None:
    """OpenID Connect: signing keys, clients, Entra ID subjects."""


@oidc.command("rotate-key")
@click.option("--alg", type=click.Choice(ALGS), default="RS256", show_default=True)
@data_dir_option
@fails_cleanly
def oidc_rotate_key(alg: str, data_dir: Path) -> None:
    """Make a new signing key: published now, signing from [oidc] publish_ahead_hours on (the
    first key of an algorithm signs at once); the old key signs until then."""
    with opened(data_dir) as (store, config):
        made = OidcKeys(store, config).rotate(alg)
    click.echo(f"new {alg} key {made.kid}: published now, signs from {when(made.signs_from)}")


@oidc.command("keys")
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
@fails_cleanly
def oidc_keys(as_json: bool, data_dir: Path) -> None:
    """List the signing keys and what each does now (signing, next, retiring, expired)."""
    with opened(data_dir) as (store, config):
        found = OidcKeys(store, config).listing()
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(k) for k in found]))
        return
    for k in found:
        until = f"  published until {when(k.published_until)}" if k.published_until else ""
        click.echo(f"{k.kid}  {k.alg}  {k.state:8}  signs from {when(k.signs_from)}{until}")


@oidc.group("client")
def client() -> None:
    """Relying parties: applications, and Entra ID's external authentication method."""


@client.command("add")
@click.argument("name")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact; repeatable.")
@click.option("--public", is_flag=True, help="No secret (a browser or mobile app); PKCE only.")
@click.option("--kind", type=click.Choice(("app", "entra-eam")), default="app", show_default=True)
@click.option("--entra-tenant", default="", help="entra-eam: the tenant id (tid).")
@click.option("--entra-client-id", default="", help="entra-eam: OpenMFA's application id there.")
@click.option("--issuer", default="", help="entra-eam: the hint's issuer (default: Entra's).")
@click.option("--jwks-uri", default="", help="entra-eam: the tenant's keys (default: Entra's).")
@click.option("--match-upn", is_flag=True, help="entra-eam: map an account on first use by UPN.")
@data_dir_option
@fails_cleanly
def client_add(
    name: str,
    redirect_uris: tuple[str, ...],
    public: bool,
    kind: str,
    entra_tenant: str,
    entra_client_id: str,
    issuer: str,
    jwks_uri: str,
    match_upn: bool,
    data_dir: Path,
) -> None:
    """Register a client; a confidential one's secret is printed this once."""
    with opened(data_dir) as (store, config):
        made, secret = OidcClients(store).add(
            name,
            list(redirect_uris),
            public=public,
            kind=kind,
            entra_tenant=entra_tenant,
            entra_client_id=entra_client_id,
            issuer=issuer,
            jwks_uri=jwks_uri,
            match_upn=match_upn,
        )
        OidcKeys(store, config).ensure("RS256")  # a first key, signing at once
    click.echo(f"client_id:     {made.client_id}")
    if secret:
        click.echo(f"client_secret: {secret}")
        click.echo("(shown this once: only its hash is kept)")


@client.command("list")
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
@fails_cleanly
def client_list(as_json: bool, data_dir: Path) -> None:
    """List the clients (never a secret)."""
    with opened(data_dir) as (store, _):
        found = OidcClients(store).list()
    if as_json:
        click.echo(json.dumps([c.view() for c in found]))
        return
    for c in found:
        kind = c.kind + (" public" if c.public else "")
        click.echo(f"{c.name}  {c.client_id}  {kind}  {' '.join(c.redirect_uris)}")


@client.command("remove")
@click.argument("name")
@data_dir_option
@fails_cleanly
def client_remove(name: str, data_dir: Path) -> None:
    """Remove a client (by name or client_id): its codes and requests are refused from now on."""
    with opened(data_dir) as (store, _):
        OidcClients(store).remove(name)
    click.echo(f"removed client {name}")


@oidc.group("subject")
def subject() -> None:
    """Which person an Entra ID account (tenant id + object id) is."""


@subject.command("map")
@click.argument("user")
@click.option("--oid", required=True, help="The account's object id in Entra ID.")
@click.option("--tid", required=True, help="The tenant id.")
@data_dir_option
@fails_cleanly
def subject_map(user: str, oid: str, tid: str, data_dir: Path) -> None:
    """Map an Entra account to USER."""
    with opened(data_dir) as (store, _):
        OidcSubjects(store).map(user, oid, tid)
    click.echo(f"mapped {tid}/{oid} to {user}")


@subject.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@data_dir_option
@fails_cleanly
def subject_import(file: Path, data_dir: Path) -> None:
    """Map accounts from a CSV file of user,oid,tid lines (all of them, or none)."""
    with opened(data_dir) as (store, _):
        done = OidcSubjects(store).import_csv(file.read_bytes())
    click.echo(f"mapped {len(done)} accounts")


@subject.command("list")
@data_dir_option
@fails_cleanly
def subject_list(data_dir: Path) -> None:
    with opened(data_dir) as (store, _):
        for s in OidcSubjects(store).list():
            click.echo(f"{s.user}  {s.tid}  {s.oid}  {s.how}  {when(s.created_at)}")


@subject.command("remove")
@click.option("--oid", required=True)
@click.option("--tid", required=True)
@data_dir_option
@fails_cleanly
def subject_remove(oid: str, tid: str, data_dir: Path) -> None:
    with opened(data_dir) as (store, _):
        OidcSubjects(store).remove(oid, tid)
    click.echo(f"removed the mapping of {tid}/{oid}")
