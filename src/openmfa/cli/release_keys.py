"""`openmfa release-key`: the administrator's key that signs bundles, and the hosts that pin it."""

from __future__ import annotations

from pathlib import Path

import click

from .common import fails_cleanly, record_option


def _root(root: Path | None, record: Path | None) -> Path:
    if root is not None:
        return root
    from ..install.record import InstallRecord, record_path

    return InstallRecord.load(record_path(record)).root_path


@click.group("release-key")
def release_key() -> None:
    """Sign bundles with your own key; each host takes only bundles signed by a key it pins."""


@release_key.command("create")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@fails_cleanly
def create(out: Path) -> None:
    """Make the release key (Ed25519) in OUT (mode 0600; keep it off the hosts, and backed up);
    print its public half, to pin on every host with `openmfa release-key trust`."""
    from ..install.signing import create_key, key_id

    public = create_key(out)
    click.echo(public)
    click.echo(f"release key {key_id(public)} written to {out}; pin the line above on each host")


@release_key.command("trust")
@click.argument("public")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="The installation (before `openmfa install`, too); default: the install record's.",
)
@record_option
@fails_cleanly
def trust_cmd(public: str, root: Path | None, record: Path | None) -> None:
    """Pin PUBLIC (what `release-key create` printed): from then on this host installs and
    upgrades only from bundles it signed."""
    from ..install.signing import key_id, trust

    where = _root(root, record)
    added = trust(where, public)
    state = "now trusted" if added else "was trusted already"
    click.echo(f"release key {key_id(public.strip())} {state} at {where}")


@release_key.command("list")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path))
@record_option
@fails_cleanly
def list_cmd(root: Path | None, record: Path | None) -> None:
    """The release keys this host pins (none: it takes unsigned bundles)."""
    from ..install.signing import key_id, trusted

    for public in trusted(_root(root, record)):
        click.echo(f"{key_id(public)}\t{public}")
