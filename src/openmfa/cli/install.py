"""`openmfa install|upgrade|rollback|bundle`: releases side by side, upgraded in place."""

from __future__ import annotations

from pathlib import Path

import click

from .common import fails_cleanly, record_option


@click.command("install")
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
    help="Comma-separated: server, portal, mobile, adapter, console.",
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
    from ..install.installer import install
    from ..install.record import record_path

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


@click.command("upgrade")
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
    from ..farm.agent import data_comes_back
    from ..install.record import record_path
    from ..install.upgrader import JOURNAL, Upgrade

    up = Upgrade(record_path(record), click.echo, data_comes_back)
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


@click.command("rollback")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@record_option
@fails_cleanly
def rollback_cmd(yes: bool, record: Path | None) -> None:
    """Undo the last upgrade: the previous release and the data as it was before the upgrade
    (the current data is backed up first)."""
    from ..farm.agent import data_comes_back
    from ..install.record import record_path
    from ..install.upgrader import Upgrade

    up = Upgrade(record_path(record), click.echo, data_comes_back)
    if not yes:
        click.confirm("Roll back the last upgrade?", abort=True)
    click.echo(f"OpenMFA {up.rollback()} is installed again")


@click.group()
def bundle() -> None:
    """Offline bundles: every wheel a release needs, for hosts without network access."""


@bundle.command("create")
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--sign-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Sign the manifest with this release key (`openmfa release-key create`).",
)
@record_option
@fails_cleanly
def bundle_create(out: Path, sign_key: Path | None, record: Path | None) -> None:
    """Write the installed release's wheels, a CycloneDX SBOM of them and a checksum manifest
    (signed with --sign-key) to OUT (.tar.gz or folder)."""
    from ..install.record import InstallRecord, record_path
    from ..install.releases import create_bundle
    from ..install.signing import key_id, load_private, public_text

    rec = InstallRecord.load(record_path(record))
    key = load_private(sign_key) if sign_key is not None else None
    create_bundle(rec.release_dir(), rec.version, out, key)
    signed = f", signed by release key {key_id(public_text(key.public_key()))}" if key else ""
    click.echo(f"bundle of OpenMFA {rec.version}: {out}{signed}")
