"""Promotion: a new master for a new epoch, planned (handover) or forced (the master is lost).

Invariant owned here: a planned handover never leaves two nodes taking writes and loses no
change, nor an open push request (the new master adopts them before it is promoted) — the old
master takes no writes (role ``handover``) from before it checks the new one's position until it
follows it; if anything fails before the new master accepted, it is master again and nothing
changed.
"""

from __future__ import annotations

import time
from dataclasses import replace

import httpx

from ..errors import Conflict, InvalidInput, NotMaster, PeerError
from ..store.database import Store
from . import membership
from .follower import wait_for_position
from .membership import Membership
from .peers import call, checked
from .push_relay import ADOPT_PATH, DECIDED_PATH, decided_requests, open_requests


def force_promote(store: Store, m: Membership, node: str) -> Membership:
    """The master is lost: this node (``node``) leads a new epoch at once."""
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


def handover(
    store: Store, m: Membership, node: str, nodes: dict[str, str], timeout: float
) -> Membership:
    """Planned: stop writes here, wait until ``node`` has every change, hand over, follow it."""
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
        reached, said = wait_for_position(m, store.node_name, url, target, timeout)
        if not reached:
            where = "does not answer" if said is None else f"is at {said.position}"
            raise PeerError(
                f"{node} {where}; it must reach change {target} first. Nothing changed: "
                "this node is master again"
            )
        _hand_over_pushes(store, m, node, url)
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


def _hand_over_pushes(store: Store, m: Membership, node: str, url: str) -> None:
    """Open push requests live at the master and are not replicated: the new one takes them
    (no new one opens here from the handover on), so they are answered there."""
    now = time.time()
    for path, requests, what in (
        (ADOPT_PATH, open_requests(store, now), "open"),
        (DECIDED_PATH, decided_requests(store, now), "just answered"),
    ):
        if not requests:
            continue
        resp = call(m.key, store.node_name, url, "POST", path, body={"requests": requests})
        if resp.status_code == 404:
            continue  # a release without them: it could not answer them anyway
        checked(resp, f"{node} refused the {what} push requests")


def _save(store: Store, m: Membership) -> None:
    with store.write() as conn:
        membership.save(store, conn, m)


def tell_members(
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
