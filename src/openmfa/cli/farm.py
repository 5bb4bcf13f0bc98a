"""`openmfa farm ...`: make a farm, join it, see it, upgrade and roll it back. The steps live in
``openmfa.farm`` (``join``, ``status``, ``rolling``, ``rollback``); the commands parse, call
and print."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import InvalidInput
from ..farm import join
from ..farm.balancer import Balancer, HAProxy, NoBalancer
from ..farm.move import Pacing
from ..farm.rollback import FarmRollback
from ..farm.rolling import FarmUpgrade
from ..farm.status import FarmStatus, read_status
from ..store.database import DATA_FORMAT, Store
from .common import F, data_dir_option, fails_cleanly, opened, when

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
        own_url = url or "http://" + str(config.get("server", "listen"))
        if config.get("store", "url"):
            _shared_init(store, own_url)
            return
        m = join.make_farm(store, own_url)
    click.echo(f"this node is the master of farm {m.farm_id} (epoch {m.epoch}) at {m.master_url}")
    click.echo("\nJoin token (secret: it carries the farm key; shown once):\n")
    click.echo(f"  {m.join_token()}\n")
    click.echo(f"On each subordinate: openmfa farm join {m.master_url} --token TOKEN")


def _shared_init(store: Store, url: str) -> None:
    """A shared-database farm: the first node makes it, each other node adds itself."""
    done = join.join_shared(store, url)
    verb = "made" if done.made else "joined"
    click.echo(
        f"this node {verb} shared-database farm {done.membership.farm_id} at {url} "
        f"({done.count} nodes); run `openmfa farm init` on each other node that uses this database"
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
    joined = join.join(data_dir, master_url, token, url, click.echo)
    click.echo(
        f"joined farm {joined.farm_id} as a subordinate of {master_url} at change {joined.position}"
    )
    click.echo("start `openmfa serve` here: it follows the master from this position")


@farm.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@data_dir_option
@fails_cleanly
def farm_status(as_json: bool, data_dir: Path) -> None:
    """Every node: role, release, formats it reads, position and lag, last contact."""
    with opened(data_dir) as (store, _):
        status = read_status(store)
    _show_status(status, as_json)


def _show_status(status: FarmStatus, as_json: bool) -> None:
    m, fmt = status.membership, status.format
    if as_json:
        doc = {
            "farm": m.farm_id,
            "epoch": m.epoch,
            "master": m.master_url,
            "format": fmt,
            "nodes": status.nodes,
            "components": status.components,
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
    for n in status.nodes:
        lag = "-" if n["lag"] is None else str(n["lag"])
        click.echo(
            f"{n['name']:<20}{n['role']:<13}{n['release']:<10}{n['reads']:<7}"
            f"{'-' if n['position'] is None else n['position']:>9}{lag:>6}  "
            f"{when(n['last_contact']):<22}{n['health']}"
        )
    if not status.components:
        return
    click.echo(
        f"\n{'component':<20}{'kind':<9}{'host':<18}{'release':<10}{'sdk':<6}"
        f"{'last contact':<22}health"
    )
    for c in status.components:
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
        done = join.promote(store, node, force=force, timeout=timeout)
    new = done.membership
    click.echo(f"{node} is the master of epoch {new.epoch} at {new.master_url}")
    for name, ok in done.told.items():
        click.echo(f"  {name}: {'follows it' if ok else 'not reached (it will find out itself)'}")


@farm.command("finalize")
@data_dir_option
@fails_cleanly
def farm_finalize(data_dir: Path) -> None:
    """Move the farm to this release's data format, once every node can read it.

    Until then the master writes the farm's current format, so every node (and a rollback to the
    previous release) can still read everything."""
    with opened(data_dir) as (store, _):
        before, after = join.finalize_farm(store)
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
        FarmUpgrade(
            store,
            bundle,
            balancer,
            say,
            hold=hold,
            pacing=Pacing(node_timeout=node_timeout, min_up=min_up, up_timeout=up_timeout),
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
            pacing=Pacing(node_timeout=node_timeout, min_up=min_up, up_timeout=up_timeout),
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
    type=click.Choice(["portal", "mobile", "adapter", "console"]),
    required=True,
    help="What this host runs.",
)
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Its portal.toml, mobile.toml, adapter.toml or console.toml (the nodes and the key it "
    "reports with).",
)
@click.option(
    "--name",
    required=True,
    help="Its name in the inventory; also its server name in the load balancer's backend.",
)
@fails_cleanly
def farm_join_component(kind: str, config_path: Path, name: str) -> None:
    """Put this portal, mobile-service, adapter or console host in the farm's inventory (run on that
    host).

    Writes `name` into its config file and reports once through the SDK, with the key the
    service already has (its scope must be KIND): the nodes then list it in `openmfa farm
    status`, and `openmfa farm upgrade` upgrades it. Restart the service (an adapter host: start
    `openmfa adapter agent`) to keep reporting."""
    from ..component_join import join_component

    join_component(kind, config_path, name)
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
    with opened(data_dir) as (store, _):
        join.forget_component(store, name)
    click.echo(f"{name} is no longer in the farm's inventory")
