"""`openmfa farm ...`: make a farm, join it, see it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..config import default_text
from ..errors import Conflict, InvalidInput, NotMaster
from ..farm import membership
from ..farm.balancer import Balancer, HAProxy, NoBalancer
from ..farm.components import answering, inventory
from ..farm.feed import stored_reports
from ..farm.follower import bootstrap, hello, register
from ..farm.formats import finalize
from ..farm.promotion import force_promote, handover, tell_members
from ..farm.rolling import FarmRollback, RollingUpgrade
from ..farm.wire import ComponentSeen
from ..node.lock import NodeLock
from ..store.changes import Change, ChangeWriter
from ..store.database import DATA_FORMAT, READS_FORMATS, DataDir, Store, _node_name
from .common import F, data_dir_option, fails_cleanly, opened, when

SILENT_AFTER = 60.0
"""A subordinate not heard from for this long is reported as silent."""


farm: click.Group = click.Group("farm", help="A farm: one master replicating to subordinates.")


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
    with opened(data_dir) as (store, config):
        if config.get("store", "url"):
            _shared_init(store, url or "http://" + str(config.get("server", "listen")))
            return
        with store.write() as conn:
            if membership.load(store, conn) is not None:
                raise Conflict("this node is in a farm already; see `openmfa farm status`")
            m = membership.new_farm(url or "http://" + str(config.get("server", "listen")))
            membership.save(store, conn, m)
        ChangeWriter(store).commit(
            [
                Change("farm.format", {"format": store.data_format()}),
                Change("farm.member", {"name": store.node_name, "url": m.self_url}),
            ]
        )
    click.echo(f"this node is the master of farm {m.farm_id} (epoch {m.epoch}) at {m.master_url}")
    click.echo("\nJoin token (secret: it carries the farm key; shown once):\n")
    click.echo(f"  {m.join_token()}\n")
    click.echo(f"On each subordinate: openmfa farm join {m.master_url} --token TOKEN")


def _shared_init(store: Store, url: str) -> None:
    """A shared-database farm: the first node makes it, each other node adds itself."""
    with store.write() as conn:
        m = membership.load(store, conn)
        if m is not None and not m.shared:
            raise Conflict("this database belongs to a replicating farm; see `openmfa farm status`")
        made = m is None
        if made:
            membership.save(store, conn, membership.new_shared_farm())
    changes = [Change("farm.member", {"name": store.node_name, "url": url})]
    if made:
        changes.insert(0, Change("farm.format", {"format": store.data_format()}))
    ChangeWriter(store).commit(changes)
    m = membership.load(store)
    assert m is not None
    count = len(membership.members(store))
    verb = "made" if made else "joined"
    click.echo(
        f"this node {verb} shared-database farm {m.farm_id} at {url} ({count} nodes); "
        "run `openmfa farm init` on each other node that uses this database"
    )


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
    dd = DataDir(data_dir)
    if dd.config_file.exists() and dd.config().get("store", "url"):
        raise InvalidInput(
            "nodes on PostgreSQL share one database and need no change feed: run "
            "`openmfa farm init --url URL` on each node that uses the database"
        )
    farm_id, key = membership.parse_token(token)
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
    with opened(data_dir) as (store, _):
        m = membership.load(store)
        with store.read() as conn:
            position = Store.generation(conn)
        reports = stored_reports(store) if m is not None and m.is_master else []
        members = membership.members(store) if m is not None and m.is_master else {}
    if m is None:
        raise InvalidInput("this node is not in a farm; `openmfa farm init` makes one")
    from .. import __version__

    now = time.time()
    fmt = membership.farm_format(store)
    everyone = {**membership.members(store), store.node_name: m.self_url}
    seen, _ = inventory(m, store.node_name, everyone)
    components = [_component_row(c, now) for c in seen]
    if m.shared:
        _show_status(m, fmt, _shared_nodes(store, m, position, now), components, as_json)
        return
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
    heard = {r.name for r in reports} | {store.node_name}
    for name in sorted(set(members) - heard):  # joined, but never polled this master
        nodes.append(
            {
                "name": name,
                "role": membership.SUBORDINATE,
                "release": "?",
                "reads": "?",
                "position": None,
                "lag": None,
                "last_contact": None,
                "health": "never seen",
            }
        )
    _show_status(m, fmt, nodes, components, as_json)


def _component_row(c: ComponentSeen, now: float) -> dict[str, Any]:
    return {
        "name": c.name,
        "kind": c.kind,
        "host": c.host,
        "url": c.url,
        "release": c.release,
        "sdk_versions": c.sdk_versions,
        "health": c.health if answering(c, now) else "not answering",
        "last_contact": c.contact,
        "heard_by": c.node,
        "upgrading": c.upgrading,
    }


def _shared_nodes(
    store: Store, m: membership.Membership, position: int, now: float
) -> list[dict[str, Any]]:
    """Every node of a shared-database farm, as it answers now (they share one position)."""
    nodes = []
    for name, url in sorted(membership.members(store).items()):
        said = hello(m, store.node_name, url)
        nodes.append(
            {
                "name": name,
                "role": membership.SHARED,
                "release": said.release if said else "?",
                "reads": f"{said.reads[0]}-{said.reads[1]}" if said else "?",
                "position": position,
                "lag": 0,
                "last_contact": now if said else None,
                "health": "ok" if said else "not answering",
            }
        )
    return nodes


def _show_status(
    m: membership.Membership,
    fmt: int,
    nodes: list[dict[str, Any]],
    components: list[dict[str, Any]],
    as_json: bool,
) -> None:
    if as_json:
        doc = {
            "farm": m.farm_id,
            "epoch": m.epoch,
            "master": m.master_url,
            "format": fmt,
            "nodes": nodes,
            "components": components,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    where = f"master {m.master_url}" if not m.shared else "shared database"
    click.echo(f"farm {m.farm_id}  epoch {m.epoch}  {where}  data format {fmt}")
    if fmt < DATA_FORMAT and m.is_master:
        click.echo(
            f"  this release writes format {DATA_FORMAT}: once every node reads it, "
            "`openmfa farm finalize` moves the farm (the previous release can no longer take over)"
        )
    click.echo(
        f"{'node':<20}{'role':<13}{'release':<10}{'reads':<7}{'position':>9}{'lag':>6}"
        f"  {'last contact':<22}health"
    )
    for n in nodes:
        lag = "-" if n["lag"] is None else str(n["lag"])
        click.echo(
            f"{n['name']:<20}{n['role']:<13}{n['release']:<10}{n['reads']:<7}"
            f"{'-' if n['position'] is None else n['position']:>9}{lag:>6}  "
            f"{when(n['last_contact']):<22}{n['health']}"
        )
    if not components:
        return
    click.echo(
        f"\n{'component':<20}{'kind':<9}{'host':<18}{'release':<10}{'sdk':<6}"
        f"{'last contact':<22}health"
    )
    for c in components:
        sdk = ",".join(str(v) for v in c["sdk_versions"])
        click.echo(
            f"{c['name']:<20}{c['kind']:<9}{c['host'][:17]:<18}{c['release']:<10}{sdk:<6}"
            f"{when(c['last_contact']):<22}{c['health']}"
            + ("  (upgrading)" if c["upgrading"] else "")
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
    with opened(data_dir) as (store, _):
        m = membership.load(store)
        if m is None:
            raise InvalidInput("this node is not in a farm")
        if m.shared:
            raise InvalidInput(
                "a shared-database farm has no master: every node writes the one database"
            )
        nodes = membership.members(store)
        new = force_promote(store, m, node) if force else handover(store, m, node, nodes, timeout)
        told = tell_members(store, new, nodes, skip={node, store.node_name})
    click.echo(f"{node} is the master of epoch {new.epoch} at {new.master_url}")
    for name, ok in told.items():
        click.echo(f"  {name}: {'follows it' if ok else 'not reached (it will find out itself)'}")


@farm.command("finalize")
@data_dir_option
@fails_cleanly
def farm_finalize(data_dir: Path) -> None:
    """Move the farm to this release's data format, once every node can read it.

    Until then the master writes the farm's current format, so every node (and a rollback to the
    previous release) can still read everything."""
    with opened(data_dir) as (store, _):
        m = membership.load(store)
        if m is None or not m.is_master:
            raise NotMaster("run `openmfa farm finalize` on the farm's master")
        before, after = finalize(store, m)
    if before == after:
        click.echo(f"the farm is at data format {after} already; nothing to do")
    else:
        click.echo(f"the farm's data format is now {after}; rollback below this release is over")


def _balancer_options(fn: F) -> F:
    """--lb, --haproxy-socket, --haproxy-backend: where nodes are taken out and put back;
    --haproxy-portal-backend, --haproxy-mobile-backend: the same for the portal and mobile
    hosts (their server names are the components' names); --dry-run."""
    fn = click.option(
        "--dry-run", is_flag=True, help="Print the plan, host by host; change nothing."
    )(fn)
    fn = click.option(
        "--haproxy-mobile-backend", default="", help="HAProxy backend of the mobile hosts."
    )(fn)
    fn = click.option(
        "--haproxy-portal-backend", default="", help="HAProxy backend of the portal hosts."
    )(fn)
    fn = click.option("--haproxy-backend", default="openmfa", show_default=True)(fn)
    fn = click.option(
        "--haproxy-socket", type=click.Path(path_type=Path), help="HAProxy admin socket."
    )(fn)
    return click.option(
        "--lb", type=click.Choice(["none", "haproxy"]), default="none", show_default=True
    )(fn)


def _pacing_options(fn: F) -> F:
    """--node-timeout, --min-up, --up-timeout: how long a node may take, how many must serve."""
    fn = click.option(
        "--up-timeout",
        default=120.0,
        show_default=True,
        help="Seconds to wait for a node put back to serve (and for --min-up others to be up).",
    )(fn)
    fn = click.option(
        "--min-up",
        default=1,
        show_default=True,
        type=click.IntRange(min=1),
        help="Other servers that must be up before a node is taken out.",
    )(fn)
    return click.option(
        "--node-timeout", default=600.0, show_default=True, help="Seconds per node."
    )(fn)


@farm.command("upgrade")
@click.option(
    "--bundle",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Offline bundle of the new release (`openmfa bundle create`), at this path on every host.",
)
@_balancer_options
@click.option("--hold", is_flag=True, help="Leave `farm finalize` to the administrator.")
@_pacing_options
@data_dir_option
@fails_cleanly
def farm_upgrade(
    bundle: Path,
    lb: str,
    haproxy_socket: Path | None,
    haproxy_backend: str,
    haproxy_portal_backend: str,
    haproxy_mobile_backend: str,
    dry_run: bool,
    hold: bool,
    node_timeout: float,
    min_up: int,
    up_timeout: float,
    data_dir: Path,
) -> None:
    """Upgrade the whole deployment while it keeps serving (run on the master): every node,
    one at a time; then every mobile-service host, portal host and adapter host in the
    farm's inventory (`openmfa farm join-component`), one at a time; then finalize.

    Rerun it to resume after a failure: hosts on the new release are skipped."""
    balancer = _balancer(lb, haproxy_socket, haproxy_backend)
    others = _component_balancers(
        lb, haproxy_socket, haproxy_portal_backend, haproxy_mobile_backend
    )
    from .progress import Progress

    with opened(data_dir) as (store, _), Progress(sys.stdout) as say:
        RollingUpgrade(
            store,
            bundle,
            balancer,
            say,
            hold=hold,
            node_timeout=node_timeout,
            min_up=min_up,
            up_timeout=up_timeout,
            component_lbs=others,
            dry_run=dry_run,
        ).run()
    if not dry_run:
        click.echo("the farm is upgraded")


@farm.command("rollback")
@_balancer_options
@_pacing_options
@data_dir_option
@fails_cleanly
def farm_rollback(
    lb: str,
    haproxy_socket: Path | None,
    haproxy_backend: str,
    haproxy_portal_backend: str,
    haproxy_mobile_backend: str,
    dry_run: bool,
    node_timeout: float,
    min_up: int,
    up_timeout: float,
    data_dir: Path,
) -> None:
    """Put the deployment back on the release before its last upgrade while it keeps serving
    (run on the master): the adapter, portal and mobile hosts, then every node, one at a
    time. Possible until `farm finalize`.

    Rerun it to resume after a failure: hosts back on the previous release are skipped."""
    balancer = _balancer(lb, haproxy_socket, haproxy_backend)
    others = _component_balancers(
        lb, haproxy_socket, haproxy_portal_backend, haproxy_mobile_backend
    )
    from .progress import Progress

    with opened(data_dir) as (store, _), Progress(sys.stdout) as say:
        FarmRollback(
            store,
            balancer,
            say,
            node_timeout=node_timeout,
            min_up=min_up,
            up_timeout=up_timeout,
            component_lbs=others,
            dry_run=dry_run,
        ).run()
    if not dry_run:
        click.echo("the farm is rolled back")


def _component_balancers(
    lb: str, haproxy_socket: Path | None, portal_backend: str, mobile_backend: str
) -> dict[str, Balancer]:
    found: dict[str, Balancer] = {}
    for kind, backend in (("portal", portal_backend), ("mobile", mobile_backend)):
        if backend:
            found[kind] = _balancer(lb, haproxy_socket, backend)
    return found


def _balancer(lb: str, haproxy_socket: Path | None, haproxy_backend: str) -> Balancer:
    if lb == "haproxy":
        if haproxy_socket is None:
            raise InvalidInput("--lb haproxy needs --haproxy-socket (HAProxy's admin socket)")
        return HAProxy(haproxy_socket, haproxy_backend)
    return NoBalancer()


@farm.command("join-component")
@click.option(
    "--kind",
    type=click.Choice(["portal", "mobile", "adapter"]),
    required=True,
    help="What this host runs.",
)
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Its portal.toml, mobile.toml or adapter.toml (the nodes and the key it reports with).",
)
@click.option(
    "--name",
    required=True,
    help="Its name in the inventory; also its server name in the load balancer's backend.",
)
@fails_cleanly
def farm_join_component(kind: str, config_path: Path, name: str) -> None:
    """Put this portal, mobile-service or adapter host in the farm's inventory (run on that
    host).

    Writes `name` into its config file and reports once through the SDK, with the key the
    service already has (its scope must be KIND): the nodes then list it in `openmfa farm
    status`, and `openmfa farm upgrade` upgrades it. Restart the service (an adapter host: start
    `openmfa adapter agent`) to keep reporting."""
    import tomlkit

    from ..component import Identity, Reporter
    from ..farm.agent import install_state
    from ..service_config import NAME

    if not NAME.fullmatch(name):
        raise InvalidInput(
            "--name: letters, digits, '.', '_' and '-' (as in HAProxy's server names), up to 63"
        )
    doc = tomlkit.parse(config_path.read_text("utf-8"))
    table = doc.get(kind)
    if table is None:
        raise InvalidInput(f"{config_path} has no [{kind}] table: is it a {kind}.toml?")
    table["name"] = name
    from ..node.control import base_url

    if kind == "portal":
        from ..portal.config import load as load_portal

        cfg_p = load_portal(config_path)
        nodes, key, url = cfg_p.nodes, cfg_p.api_key, base_url(cfg_p.host, cfg_p.port, False)
        url += cfg_p.prefix
    elif kind == "mobile":
        from ..mobile.config import load as load_mobile

        cfg_m = load_mobile(config_path)
        nodes, key, url = cfg_m.nodes, cfg_m.api_key, base_url(cfg_m.host, cfg_m.port, False)
        url += cfg_m.prefix
    else:
        from ..adapters.config import load as load_adapter

        cfg_a = load_adapter(config_path)
        nodes, key, url = [cfg_a.node_url], cfg_a.api_key, cfg_a.node_url

    reporter = Reporter(  # it reports once: an order waits for the service itself
        Identity(name, kind, url),
        nodes,
        key,
        state_file=config_path.resolve().parent / f"{kind}.orders.json",
        local=install_state,
    )
    try:
        reporter.report()
    finally:
        reporter.stop()
    tmp = config_path.with_name(config_path.name + ".tmp")
    tmp.write_text(tomlkit.dumps(doc), "utf-8")
    tmp.chmod(config_path.stat().st_mode & 0o777)
    tmp.replace(config_path)
    service = (
        "start `openmfa adapter agent`" if kind == "adapter" else f"restart the {kind} service"
    )
    click.echo(
        f"{name} ({kind}) is in the farm's inventory: `openmfa farm status` on a node lists it. "
        f"{config_path} now names it; {service} so that it keeps reporting"
    )


@farm.command("forget-component")
@click.argument("name")
@data_dir_option
@fails_cleanly
def farm_forget_component(name: str, data_dir: Path) -> None:
    """Drop a portal, mobile or adapter host that is gone for good from every node's inventory
    (one that still runs and reports comes back)."""
    from ..farm.components import tell_every_node

    with opened(data_dir) as (store, _):
        m = membership.load(store)
        if m is None:
            raise InvalidInput("this node is not in a farm")
        everyone = {**membership.members(store), store.node_name: m.self_url}
        missed = tell_every_node(m, store.node_name, everyone, name, None, forget=True)
    if missed:
        raise Conflict(f"nodes {', '.join(missed)} did not answer; run it again when they do")
    click.echo(f"{name} is no longer in the farm's inventory")
