"""Push requests in a farm (``farm.push_relay``) with real data files in-process: where they
live (``leads``), how a handover carries the open and the just-decided ones to the new master,
and how a waiter on the master hears the answer or notices the role moved."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from openmfa.config import Config
from openmfa.core import push as proto
from openmfa.core.verification import Decision
from openmfa.farm import membership
from openmfa.farm.push_relay import (
    _moved_to,
    adopt,
    adopt_decided,
    decided_requests,
    leads,
    open_requests,
    wait_outcome,
)
from openmfa.node.accounts import Accounts
from openmfa.node.push import PushService
from openmfa.node.push_hub import PushHub
from openmfa.store import tables as t
from openmfa.store.database import DataDir, Store
from tests.conftest import make_config

Device = tuple[PushService, ec.EllipticCurvePrivateKey, str]
COUNTER = itertools.count(1)


def _role(store: Store, role: str) -> None:
    m = membership.Membership("f1", role, 1, "http://master:8480", bytes(32), "http://me:8480")
    with store.write() as conn:
        membership.save(store, conn, m)


@pytest.fixture
def master(store: Store, config: Config) -> Device:
    """A master with alice's phone activated (min_gap 0: pushes back to back)."""
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    push = PushService(store, config, accounts)
    push.requests.min_gap = 0
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    code = push.issue_activation("alice").code
    device_id = push.activate(code, "ES256", proto.b64u(spki)).device_id
    return push, key, device_id


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Store]:
    """The node a handover goes to: alice is there under another id (bob came first)."""
    config = make_config()
    s = Store.create(DataDir(tmp_path / "other"), config)
    accounts = Accounts(s, config)
    accounts.add_user("bob")
    accounts.add_user("alice")
    try:
        yield s
    finally:
        s.close()


def _open(push: PushService, rid: str, user: str = "alice") -> str:
    with push.store.write() as conn:
        d, _ = push.open(conn, user, None, client="app", source="", request_id=rid, now=time.time())
    assert isinstance(d, Decision) and d.pending is not None, d
    return d.pending[0]


def _answer(device: Device, push_id: str, decision: str) -> None:
    push, key, device_id = device
    (request,) = [r for r in push.poll(*_poll(device)).requests if r.id == push_id]
    body: dict[str, Any] = {"v": 1, "op": "answer", "request_id": push_id, "nonce": request.nonce,
            "decision": decision, "number": "", "device_id": device_id,
            "counter": next(COUNTER), "ts": int(time.time())}  # fmt: skip
    push.answer(*proto.sign_message(key, body))


def _poll(device: Device) -> tuple[str, str]:
    _, key, device_id = device
    body = {"v": 1, "op": "poll", "device_id": device_id, "ts": int(time.time()),
            "nonce": proto.new_nonce()}  # fmt: skip
    return proto.sign_message(key, body)


@pytest.mark.parametrize(
    ("role", "leading"),
    [
        (membership.MASTER, True),
        (membership.SHARED, True),
        (membership.HANDOVER, True),  # until the new master has taken its pushes
        (membership.SUBORDINATE, False),
    ],
)
def test_where_push_requests_live(store: Store, role: str, leading: bool) -> None:
    assert leads(store)  # a node on its own holds its pushes
    _role(store, role)
    assert leads(store) is leading


def test_a_handover_carries_the_open_requests(master: Device, other: Store) -> None:
    push = master[0]
    first, second = _open(push, "r1"), _open(push, "r2")
    carried = open_requests(push.store, time.time())
    assert sorted(r["id"] for r in carried) == sorted([first, second])
    assert adopt(other, carried) == 2
    assert adopt(other, carried) == 0  # carried twice (a retried handover): taken once
    there = PushService(other, make_config(), Accounts(other, make_config()))
    for push_id in (first, second):
        outcome = there.outcome(push_id)
        assert (outcome.user, outcome.status) == ("alice", "pending")
    ids = {r["id"]: r for r in carried}
    assert there.number(first) == ids[first]["number"]
    # A user removed on the new master meanwhile: that request cannot be answered there.
    assert adopt(other, [{**carried[0], "id": "p-gone", "user_name": "nobody"}]) == 0


def test_a_handover_carries_the_requests_just_decided(master: Device, other: Store) -> None:
    push = master[0]
    denied, still = _open(push, "r1"), _open(push, "r2")
    _answer(master, denied, "deny")
    decided = decided_requests(push.store, time.time())
    assert [(r["id"], r["status"]) for r in decided] == [(denied, "denied")]
    assert [r["id"] for r in open_requests(push.store, time.time())] == [still]
    assert adopt_decided(other, decided) == 1
    assert adopt_decided(other, decided) == 0
    there = PushService(other, make_config(), Accounts(other, make_config()))
    assert there.outcome(denied).status == "denied"  # final: never opened again there
    with pytest.raises(TypeError):
        adopt_decided(other, [{**decided[0], "id": "p2", "status": "pending"}])
    # Collected by a portal already: still collected on the new master (never twice); a
    # release before collected_at sends none: not collected.
    collected = [{**decided[0], "id": "p3", "collected_at": 1234.5}]
    older = {k: v for k, v in decided[0].items() if k != "collected_at"}
    assert adopt_decided(other, [*collected, {**older, "id": "p4"}]) == 2
    with other.read() as conn:
        got = dict(
            conn.execute(
                select(t.push_requests.c.id, t.push_requests.c.collected_at).where(
                    t.push_requests.c.id.in_(["p3", "p4"])
                )
            ).all()
        )
    assert got == {"p3": 1234.5, "p4": None}


def test_a_waiter_on_the_master_hears_the_answer(master: Device) -> None:
    push = master[0]
    push_id = _open(push, "r1")

    async def scenario() -> str:
        hub = PushHub()
        loop = asyncio.get_running_loop()

        def answer() -> None:
            _answer(master, push_id, "deny")
            loop.call_soon_threadsafe(hub.decided, push_id)

        waiter = asyncio.create_task(wait_outcome(push, hub, push.store, push_id, 30))
        thread = threading.Thread(target=answer)
        thread.start()
        started = time.monotonic()
        outcome = await waiter
        thread.join()
        assert time.monotonic() - started < 10  # the answer ended the wait, not its 30 s
        return outcome.status

    assert asyncio.run(scenario()) == "denied"


def test_a_waiter_stops_waiting_once_the_role_moved(master: Device) -> None:
    """Still pending when this node no longer leads: back to the caller, who asks the new
    master (within ``MASTER_CHECK`` seconds, not after the whole wait)."""
    push = master[0]
    push_id = _open(push, "r1")
    _role(push.store, membership.SUBORDINATE)

    async def scenario() -> tuple[str, float]:
        started = time.monotonic()
        outcome = await wait_outcome(push, PushHub(), push.store, push_id, 30)
        return outcome.status, time.monotonic() - started

    status, took = asyncio.run(scenario())
    assert status == "pending" and took < 10


def test_a_former_master_names_the_new_one() -> None:
    moved = {"code": "not_master", "message": "…", "master_url": "http://new:8480"}
    assert _moved_to(httpx.Response(409, json=moved)) == "http://new:8480"
    assert _moved_to(httpx.Response(409, json={**moved, "code": "conflict"})) == ""
    assert _moved_to(httpx.Response(409, text="not json")) == ""
    assert _moved_to(httpx.Response(200, json=moved)) == ""
