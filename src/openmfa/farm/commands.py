"""`openmfa farm ...`: make a farm, join it, see it."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import httpx

from ..cli import _opened, _when, data_dir_option, fails_cleanly
from ..config import default_text
from ..errors import Conflict, InvalidInput, NotMaster, OpenMfaError
from ..node.lock import NodeLock
from ..store.changes import Change, ChangeWriter
from ..store.database import READS_FORMATS, DataDir, Store, _node_name
from . import membership
from .feed import stored_reports
from .follower import bootstrap, hello, register
from .membership import Membership
from .peers import call, checked

SILENT_AFTER = 60.0
"""A subordinate not heard from for this long is reported as silent."""


@click.group()
def farm() -> None:
    """A farm: one master replicating to subordinates."""


@farm.command("init")
@click.option(
    "--url",
    metavar="URL",
    help="The URL subordinates reach this node's SDK at (default: http://[server] listen).",
)
@data_dir_option
@fails_cleanly
def farm_init(url: str | None, data_dir: Path) -> None:
    """Make this node the master of a new farm; print the join token for subordinates."""
    with _opened(data_dir) as (store, config):
        if config.get("store", "url"):
            raise InvalidInput(
                "nodes on PostgreSQL share one database and need no change feed; "
                "point every node's [store] url at it instead"
            )
        with store.write() as conn:
            if membership.load(store, conn) is not None:
                raise Conflict("this node is in a farm already; see `openmfa farm status`")
            m = membership.new_farm(url or "http://" + str(config.get("server", "listen")))
            membership.save(store, conn, m)
        ChangeWriter(store).commit(
            [Change("farm.member", {"name": store.node_name, "url": m.self_url})]
        )
    click.echo(f"this node is the master of farm {m.farm_id} (epoch {m.epoch}) at {m.master_url}")
    click.echo("\nJoin token (secret: it carries the farm key; shown once):\n")
    click.echo(f"  {m.join_token()}\n")
    click.echo(f"On each subordinate: openmfa farm join {m.master_url} --token TOKEN")


@farm.command("join")
@click.argument("master_url")
@click.option("--token", required=True, help="The join token `openmfa farm init` printed.")
@click.option(
    "--url",
    metavar="URL",
    help="The URL the other nodes reach this node's SDK at (default: http://[server] listen).",
)
@data_dir_option
@fails_cleanly
def farm_join(master_url: str, token: str, url: str | None, data_dir: Path) -> None:
    """Become a subordinate: copy the master's data (snapshot), then follow it when serving.

    A node of the same farm may join again (after it diverged, or fell behind): its own data
    is backed up first."""
    farm_id, key = membership.parse_token(token)
    dd = DataDir(data_dir)
    dd.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    with NodeLock(dd.root).acquire("join a farm"):
        if dd.data_file.exists():
            store = Store.open(dd)
            try:
                current = membership.load(store)
            finally:
                store.close()
            if current is not None and current.farm_id != farm_id:
                raise Conflict(
                    f"this node is in farm {current.farm_id} already; see `openmfa farm status`"
                )
            from ..store.backups import Backups

            saved = Backups(dd, dd.config()).create("before-join")
            click.echo(f"backed up this node's own data as {saved.id}")
        config = dd.config()
        name = _node_name(config)
        own_url = url or "http://" + str(config.get("server", "listen"))
        register(master_url, key, name, own_url)
        position = bootstrap(dd, master_url, farm_id, key, name, own_url)
    if not dd.config_file.exists():
        dd.config_file.write_text(default_text(), "utf-8")
    click.echo(f"joined farm {farm_id} as a subordinate of {master_url} at change {position}")
    click.echo("start `openmfa serve` here: it follows the master from this position")


@farm.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@data_dir_option
@fails_cleanly
def farm_status(as_json: bool, data_dir: Path) -> None:
    """Every node: role, release, formats it reads, position and lag, last contact."""
    with _opened(data_dir) as (store, _):
        m = membership.load(store)
        with store.read() as conn:
            position = Store.generation(conn)
        reports = stored_reports(store) if m is not None and m.is_master else []
    if m is None:
        raise InvalidInput("this node is not in a farm; `openmfa farm init` makes one")
    from .. import __version__

    now = time.time()
    nodes: list[dict[str, Any]] = [
        {
            "name": store.node_name,
            "role": m.role,
            "release": __version__,
            "reads": f"{READS_FORMATS[0]}-{READS_FORMATS[1]}",
            "position": position,
            "lag": 0 if m.is_master else None,
            "last_contact": now,
            "health": "ok",
        }
    ]
    for r in reports:
        nodes.append(
            {
                "name": r.name,
                "role": membership.SUBORDINATE,
                "release": r.release,
                "reads": r.reads,
                "position": r.position,
                "lag": max(0, position - r.position),
                "last_contact": r.contact,
                "health": "ok" if now - r.contact < SILENT_AFTER else "silent",
            }
        )
    if as_json:
        doc = {"farm": m.farm_id, "epoch": m.epoch, "master": m.master_url, "nodes": nodes}
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"farm {m.farm_id}  epoch {m.epoch}  master {m.master_url}")
    click.echo(
        f"{'node':<20}{'role':<13}{'release':<10}{'reads':<7}{'position':>9}{'lag':>6}"
        f"  {'last contact':<22}health"
    )
    for n in nodes:
        lag = "-" if n["lag"] is None else str(n["lag"])
        click.echo(
            f"{n['name']:<20}{n['role']:<13}{n['release']:<10}{n['reads']:<7}"
            f"{n['position']:>9}{lag:>6}  {_when(float(n['last_contact'])):<22}{n['health']}"
        )


@farm.command("promote")
@click.argument("node")
@click.option(
    "--force",
    is_flag=True,
    help="The master is gone: run on NODE itself to make it master without a handover.",
)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for NODE.")
@data_dir_option
@fails_cleanly
def farm_promote(node: str, force: bool, timeout: float, data_dir: Path) -> None:
    """Make NODE the farm's master (a new epoch); the other nodes follow it.

    Planned (on the master): the master stops taking writes, waits until NODE has every change,
    hands over, and follows NODE. --force (on NODE, when the master is lost): NODE leads at once;
    a former master that returns sees the newer epoch and follows."""
    with _opened(data_dir) as (store, _):
        m = membership.load(store)
        if m is None:
            raise InvalidInput("this node is not in a farm")
        nodes = membership.members(store)
        promote = _force_promote if force else _handover
        new = promote(store, m, node, nodes, timeout)
        told = _tell_members(store, new, nodes, skip={node, store.node_name})
    click.echo(f"{node} is the master of epoch {new.epoch} at {new.master_url}")
    for name, ok in told.items():
        click.echo(f"  {name}: {'follows it' if ok else 'not reached (it will find out itself)'}")


def _force_promote(
    store: Store, m: Membership, node: str, _nodes: dict[str, str], _timeout: float
) -> Membership:
    if node != store.node_name:
        raise InvalidInput(
            f"--force promotes the node it runs on ({store.node_name}); run it on {node}"
        )
    if m.is_master:
        raise Conflict("this node is the master already")
    new = m.with_master(m.epoch + 1, m.self_url)
    with store.write() as conn:
        membership.save(store, conn, new)
    return new


def _handover(
    store: Store, m: Membership, node: str, nodes: dict[str, str], timeout: float
) -> Membership:
    if not m.is_master:
        raise NotMaster(f"run a planned promotion on the master ({m.master_url}), or use --force")
    if node not in nodes or node == store.node_name:
        raise InvalidInput(
            f"{node} is not another node of this farm; the nodes: {', '.join(sorted(nodes))}"
        )
    url = nodes[node]
    _save(store, replace(m, role=membership.HANDOVER))  # no writes from here on
    try:
        with store.read() as conn:
            target = Store.generation(conn)
        deadline = time.monotonic() + timeout
        while True:
            said = hello(m, store.node_name, url)
            if said is not None and int(said["position"]) >= target:
                break
            if time.monotonic() > deadline:
                where = "does not answer" if said is None else f"is at {said['position']}"
                raise OpenMfaError(
                    f"{node} {where}; it must reach change {target} first. Nothing changed: "
                    "this node is master again"
                )
            time.sleep(0.2)
        resp = call(
            m.key, store.node_name, url, "POST", "/v1/farm/promote", body={"epoch": m.epoch + 1}
        )
        checked(resp, f"{node} refused the promotion")
    except BaseException:
        _save(store, m)
        raise
    new = m.with_master(m.epoch + 1, url)
    _save(store, new)
    return new


def _save(store: Store, m: Membership) -> None:
    with store.write() as conn:
        membership.save(store, conn, m)


def _tell_members(
    store: Store, new: Membership, nodes: dict[str, str], skip: set[str]
) -> dict[str, bool]:
    told: dict[str, bool] = {}
    for name, url in sorted(nodes.items()):
        if name in skip:
            continue
        try:
            resp = call(
                new.key,
                store.node_name,
                url,
                "POST",
                "/v1/farm/master",
                body={"epoch": new.epoch, "master_url": new.master_url},
                timeout=3,
            )
            told[name] = resp.status_code == 200
        except httpx.HTTPError:
            told[name] = False
    return told
