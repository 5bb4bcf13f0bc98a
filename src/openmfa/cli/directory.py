"""`openmfa directory ...`: people from LDAP and Active Directory."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from ..directory.sync import DirectorySync, RunResult
from .common import data_dir_option, fails_cleanly, opened, when


@click.group()
def directory() -> None:
    """Synchronise users from LDAP / Active Directory ([[directory.sources]] in server.toml)."""


@directory.command("sync")
@click.option("--source", "name", default=None, help="Only this source (default: every one).")
@click.option("--dry-run", is_flag=True, help="Read the directory and print what would change.")
@click.option(
    "--approve",
    is_flag=True,
    help="Go ahead although more people would be disabled or removed than max_changes.",
)
@click.option("--full", is_flag=True, help="Read everything, not only what changed.")
@click.option("--json", "as_json", is_flag=True, help="The result as one JSON document.")
@data_dir_option
@fails_cleanly
def sync_cmd(
    name: str | None, dry_run: bool, approve: bool, full: bool, as_json: bool, data_dir: Path
) -> None:
    """Synchronise now (on the farm's master). Exit 1 if a source failed or stopped."""
    show = sys.stderr.isatty() and not as_json

    def progress(stage: str, count: int) -> None:
        if show:
            click.echo(f"\r  {stage}: {count:,} read", nl=False, err=True)

    with opened(data_dir) as (store, config):
        results = DirectorySync(store, config).run(
            name, dry_run=dry_run, approve=approve, full=full, progress=progress
        )
    if show:
        click.echo("\r" + " " * 40 + "\r", nl=False, err=True)
    if as_json:
        click.echo(json.dumps([_json(r, dry_run) for r in results], indent=2))
    else:
        for r in results:
            _table(r, dry_run)
    if any(r.error for r in results):
        sys.exit(1)


def _json(r: RunResult, dry_run: bool) -> dict[str, object]:
    return {
        "source": r.source,
        "mode": r.mode,
        "dry_run": dry_run,
        "applied": r.applied,
        "stopped": r.stopped,
        "error": r.error,
        "seconds": round(r.seconds, 3),
        "counts": r.plan.counts(),
        "changes": [{"action": a, "user": u, "detail": d} for a, u, d in r.plan.rows()],
    }


def _table(r: RunResult, dry_run: bool) -> None:
    head = f"source {r.source}"
    if r.mode:
        head += f" ({r.mode})"
    counts = ", ".join(f"{v} {k}" for k, v in r.plan.counts().items() if v)
    verb = "would change" if dry_run or not r.applied else "changed"
    click.echo(f"{head}: {verb}: {counts or 'nothing'}")
    rows = r.plan.rows()
    if rows:
        width = max(len(u) for _, u, _ in rows) if rows else 4
        for action, user, detail in rows:
            click.echo(f"  {action:<8} {user:<{width}}  {detail}".rstrip())
    if r.error:
        click.echo(f"error: {r.error}", err=True)


@directory.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@data_dir_option
@fails_cleanly
def status_cmd(as_json: bool, data_dir: Path) -> None:
    """Each source's last run: when, how (full or incremental), what changed, any error."""
    with opened(data_dir) as (store, config):
        found = DirectorySync(store, config).status()
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(s) for s in found], indent=2))
        return
    for s in found:
        st = s.state
        click.echo(f"{s.name}\t{s.kind}\t{s.url}")
        if not st:
            click.echo("  never run")
            continue
        how = f"{st.get('mode') or '-'}, {st.get('seconds', 0)} s"
        click.echo(
            f"  last run:     {when(st.get('last_run_at'))} on {st.get('node', '?')}: "
            f"{st.get('result')} ({how})"
        )
        click.echo(f"  last success: {when(st.get('last_success_at'))}")
        counts = ", ".join(f"{v} {k}" for k, v in (st.get("counts") or {}).items() if v)
        click.echo(f"  changes:      {counts or 'none'}")
        if st.get("error"):
            click.echo(f"  error:        {st['error']}")


@directory.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read it from standard input.")
@data_dir_option
@fails_cleanly
def set_password_cmd(name: str, password_stdin: bool, data_dir: Path) -> None:
    """Store source NAME's bind password, sealed (it is never printed)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("bind password", hide_input=True, confirmation_prompt=True)
    with opened(data_dir) as (store, config):
        DirectorySync(store, config).set_password(name, password)
    click.echo(f"stored the bind password of directory source {name} (sealed)")
