"""Joining a farm and changing who is in it: what ``openmfa farm init``, ``join``, ``promote``,
``finalize``, ``join-component`` and ``forget-component`` do. Each step takes typed values and
returns what happened, or raises the project's errors; the commands only print.

- A replicating farm: ``make_farm`` on the first node (its master); ``join`` on each other node
  copies the master's data (a snapshot) and registers the node as a member. A node of the same
  farm may join again (it diverged, or fell behind): its own data is backed up first.
- A shared-database farm (PostgreSQL): ``join_shared`` on every node; the first makes the farm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import default_text
from ..errors import Conflict, InvalidInput, NotMaster
from ..node.lock import NodeLock
from ..store.changes import Change, ChangeWriter
from ..store.database import DataDir, Store, _node_name
from . import membership
from .components import tell_every_node
from .follower import bootstrap, register
from .formats import finalize
from .membership import Membership
from .promotion import force_promote, handover, tell_members

Say = Callable[[str], None]


def make_farm(store: Store, url: str) -> Membership:
    """This node becomes the master of a new replicating farm, reached at ``url``."""
    with store.write() as conn:
        if membership.load(store, conn) is not None:
            raise Conflict("this node is in a farm already; see `openmfa farm status`")
        m = membership.new_farm(url)
        membership.save(store, conn, m)
    ChangeWriter(store).commit(
        [
            Change("farm.format", {"format": store.data_format()}),
            Change("farm.member", {"name": store.node_name, "url": m.self_url}),
        ]
    )
    return m


@dataclass(frozen=True)
class SharedJoined:
    membership: Membership
    made: bool
    """This node made the farm (it was the database's first)."""
    count: int
    """Nodes in the farm now."""


def join_shared(store: Store, url: str) -> SharedJoined:
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
    return SharedJoined(m, made, len(membership.members(store)))


@dataclass(frozen=True)
class Joined:
    farm_id: str
    position: int
    """The master's change this node's copy holds; it follows the master from there."""


def join(data_dir: Path, master_url: str, token: str, url: str | None, say: Say) -> Joined:
    """This node becomes a subordinate of the master at ``master_url``: its data is replaced by
    the master's snapshot (its own, if any, backed up first: ``say`` tells which backup) and it
    is registered as a member reached at ``url`` (default: http://[server] listen)."""
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
            _back_up_own_data(dd, farm_id, say)
        config = dd.config()
        name = _node_name(config)
        own_url = url or "http://" + str(config.get("server", "listen"))
        register(master_url, key, name, own_url)
        position = bootstrap(dd, master_url, farm_id, key, name, own_url)
    if not dd.config_file.exists():
        dd.config_file.write_text(default_text(), "utf-8")
    return Joined(farm_id, position)


def _back_up_own_data(dd: DataDir, farm_id: str, say: Say) -> None:
    """Refused when the node is in another farm; else its data is kept as a backup."""
    store = Store.open(dd)
    try:
        current = membership.load(store)
    finally:
        store.close()
    if current is not None and current.farm_id != farm_id:
        raise Conflict(f"this node is in farm {current.farm_id} already; see `openmfa farm status`")
    from ..store.backups import Backups

    saved = Backups(dd, dd.config()).create("before-join")
    say(f"backed up this node's own data as {saved.id}")


@dataclass(frozen=True)
class Promoted:
    membership: Membership
    """This node's membership under the new master."""
    told: dict[str, bool]
    """Every other member: whether it was reached and follows the new master."""


def promote(store: Store, node: str, *, force: bool, timeout: float) -> Promoted:
    """``node`` becomes the master of a new epoch. Planned (on the master): a handover that
    loses no write, waiting up to ``timeout`` s for ``node``. ``force`` (on ``node`` itself, the
    master being lost): it leads at once."""
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
    return Promoted(new, told)


def finalize_farm(store: Store) -> tuple[int, int]:
    """The farm's data format moved to this release's (on the master): (before, after)."""
    m = membership.load(store)
    if m is None or not m.is_master:
        raise NotMaster("run `openmfa farm finalize` on the farm's master")
    return finalize(store, m)


def forget_component(store: Store, name: str) -> None:
    """Component ``name`` dropped from every node's inventory; refused (to be rerun) when a
    node does not answer."""
    m = membership.load(store)
    if m is None:
        raise InvalidInput("this node is not in a farm")
    everyone = {**membership.members(store), store.node_name: m.self_url}
    missed = tell_every_node(m, store.node_name, everyone, name, None, forget=True)
    if missed:
        raise Conflict(f"nodes {', '.join(missed)} did not answer; run it again when they do")
