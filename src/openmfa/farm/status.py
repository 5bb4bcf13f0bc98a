"""What ``openmfa farm status`` shows: every node of the farm (role, release, formats it reads,
position and lag, last contact, health) and every host beside the nodes, as seen from here.

A master knows its subordinates from their polls (``feed.stored_reports``) and lists a member
that never polled as ``never seen``; a node of a shared-database farm asks each other node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TypedDict

from .. import __version__
from ..contract import FarmComponentView, FarmNodeView, FarmView
from ..errors import InvalidInput
from ..store.database import READS_FORMATS, Store
from . import membership
from .components import answering, inventory
from .feed import stored_reports
from .follower import hello
from .membership import Membership
from .wire import ComponentSeen

SILENT_AFTER = 60.0
"""A subordinate not heard from for this long is reported as silent."""


class NodeRow(TypedDict):
    name: str
    role: str
    release: str
    reads: str
    position: int | None
    lag: int | None
    last_contact: float | None
    health: str


class ComponentRow(TypedDict):
    name: str
    kind: str
    host: str
    url: str
    release: str
    sdk_versions: list[int]
    health: str
    last_contact: float
    heard_by: str
    upgrading: bool


@dataclass(frozen=True)
class FarmStatus:
    membership: Membership
    format: int
    """The data format the farm's change records are written in."""
    nodes: list[NodeRow]
    components: list[ComponentRow]


def read_status(store: Store, now: float | None = None) -> FarmStatus:
    """The farm as this node sees it; refused when the node is not in a farm."""
    now = time.time() if now is None else now
    m = membership.load(store)
    if m is None:
        raise InvalidInput("this node is not in a farm; `openmfa farm init` makes one")
    with store.read() as conn:
        position = Store.generation(conn)
    members = membership.members(store)
    fmt = membership.farm_format(store)
    seen, _ = inventory(m, store.node_name, {**members, store.node_name: m.self_url})
    components = [component_row(c, now) for c in seen]
    if m.shared:
        nodes = _shared_nodes(store, m, members, position, now)
    else:
        nodes = _replicating_nodes(store, m, members, position, now)
    return FarmStatus(m, fmt, nodes, components)


def _replicating_nodes(
    store: Store, m: Membership, members: dict[str, str], position: int, now: float
) -> list[NodeRow]:
    """This node, then every subordinate that polled it (a master), then members never heard."""
    reports = stored_reports(store) if m.is_master else []
    nodes = [_this_node(store, m.role, position, 0 if m.is_master else None, now)]
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
    known = members if m.is_master else {}
    for name in sorted(set(known) - heard):  # joined, but never polled this master
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
    return nodes


def _this_node(store: Store, role: str, position: int, lag: int | None, now: float) -> NodeRow:
    return {
        "name": store.node_name,
        "role": role,
        "release": __version__,
        "reads": f"{READS_FORMATS[0]}-{READS_FORMATS[1]}",
        "position": position,
        "lag": lag,
        "last_contact": now,
        "health": "ok",
    }


def _shared_nodes(
    store: Store, m: Membership, members: dict[str, str], position: int, now: float
) -> list[NodeRow]:
    """Every node of a shared-database farm, as it answers now (they share one position)."""
    nodes: list[NodeRow] = []
    for name, url in sorted(members.items()):
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


def component_row(c: ComponentSeen, now: float) -> ComponentRow:
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


def farm_view(store: Store) -> FarmView:
    """``read_status`` as the SDK answers it (``GET /v1/farm/status``); a node on its own is a
    farm of one."""
    if membership.load(store) is None:
        with store.read() as conn:
            position = Store.generation(conn)
        alone = FarmNodeView(**_this_node(store, "alone", position, 0, time.time()))
        return FarmView(
            in_farm=False,
            node=store.node_name,
            master=store.node_name,
            format=store.data_format(),
            nodes=[alone],
            components=[],
        )
    s = read_status(store)
    return FarmView(
        in_farm=True,
        node=store.node_name,
        master=s.membership.master_url or "",
        format=s.format,
        nodes=[FarmNodeView(**n) for n in s.nodes],
        components=[
            FarmComponentView(
                name=c["name"],
                kind=c["kind"],
                host=c["host"],
                release=c["release"],
                health=c["health"],
                last_contact=c["last_contact"],
                upgrading=c["upgrading"],
            )
            for c in s.components
        ],
    )
