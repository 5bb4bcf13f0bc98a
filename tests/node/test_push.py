"""The push service against a real data file: activation codes are single use, a device
activates with its own key, a push request is opened, polled, answered once and read back, a
refused answer is audited, a fraud report blocks the user's pushes, and a subordinate sends
every push call to its master."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from openmfa.config import Config
from openmfa.core import push as proto
from openmfa.core.verification import Decision, Reason
from openmfa.errors import ActivationRefused, DeviceRefused, NotMaster, PushClosed
from openmfa.farm import membership
from openmfa.node.accounts import Accounts
from openmfa.node.audit import Origin, open_origin
from openmfa.node.push import Opened, PushService
from openmfa.store import tables as t
from openmfa.store.database import Store
from tests.conftest import make_config
from tests.e2e.helpers import wait_for


class Phone:
    """A device as the reference authenticator is one: its key, its counter."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.counter = 0
        self.device_id = ""

    def public_key(self) -> str:
        spki = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return proto.b64u(spki)

    def poll(self) -> tuple[str, str]:
        body = {"v": 1, "op": "poll", "device_id": self.device_id, "ts": int(time.time())}
        return proto.sign_message(self.key, body | {"nonce": proto.new_nonce()})

    def answer(self, request_id: str, nonce: str, decision: str, number: str) -> tuple[str, str]:
        self.counter += 1
        body: dict[str, Any] = {
            "v": 1,
            "op": "answer",
            "request_id": request_id,
            "nonce": nonce,
            "decision": decision,
            "number": number,
            "device_id": self.device_id,
            "counter": self.counter,
            "ts": int(time.time()),
        }
        return proto.sign_message(self.key, body)


@pytest.fixture
def push(store: Store, config: Config) -> PushService:
    Accounts(store, config).add_user("alice")
    return PushService(store, config, Accounts(store, config))


def _activated(push: PushService) -> Phone:
    phone = Phone()
    code = push.issue_activation("alice", "work phone").code
    done = push.activate(code, "ES256", phone.public_key())
    phone.device_id = done.device_id
    assert (done.user, done.label) == ("alice", "work phone")
    return phone


def _open(push: PushService, request_id: str = "r1") -> tuple[Decision, Opened | None]:
    with push.store.write() as conn:
        return push.open(
            conn, "alice", None, client="app", source="10.0.0.1", request_id=request_id,
            now=time.time(),
        )  # fmt: skip


def _audit(store: Store, action: str) -> list[tuple[str, str]]:
    a = t.audit
    with store.read() as conn:
        rows = conn.execute(
            select(a.c.result, a.c.reason).where(a.c.action == action).order_by(a.c.id)
        ).all()
    return [(r.result, r.reason) for r in rows]


def test_an_activation_code_is_single_use(push: PushService) -> None:
    code = push.issue_activation("alice").code
    phone = Phone()
    push.activate(code.lower(), "ES256", phone.public_key())  # as typed: case does not matter
    with pytest.raises(ActivationRefused, match="is used"):
        push.activate(code, "ES256", Phone().public_key())
    with pytest.raises(ActivationRefused, match="is unknown"):
        push.activate("A" * 16, "ES256", Phone().public_key())
    assert [d.alg for d in push.list_devices("alice")] == ["ES256"]
    # Each refusal is recorded too (it was written in the transaction the refusal undid).
    assert _audit(push.store, "device.activate") == [
        ("ok", ""),
        ("rejected", "used"),
        ("rejected", "unknown"),
    ]


def test_a_device_key_that_is_not_one_is_refused(push: PushService) -> None:
    code = push.issue_activation("alice").code
    with pytest.raises(DeviceRefused, match="device key"):
        push.activate(code, "ES256", proto.b64u(b"not a key"))
    assert push.list_devices("alice") == []


def test_a_push_is_opened_polled_answered_once_and_read_back(push: PushService) -> None:
    phone = _activated(push)
    d, opened = _open(push)
    assert d.reason is Reason.PENDING and d.pending is not None and opened is not None
    push_id, number, _ = d.pending
    assert opened.devices == [phone.device_id] and opened.request.id == push_id
    again, none = _open(push)  # the same caller's request id joins the open request
    assert again.pending is not None and again.pending[0] == push_id and none is None
    assert push.outcome(push_id, "app").status == "pending"
    seen = push.poll(*phone.poll())
    assert [r.id for r in seen.requests] == [push_id]
    nonce = seen.requests[0].nonce
    outcome = push.answer(*phone.answer(push_id, nonce, "approve", number))
    assert outcome.accepted and outcome.status == "accepted"
    assert push.outcome(push_id, "app").accepted
    with pytest.raises(PushClosed, match="already accepted"):
        push.answer(*phone.answer(push_id, nonce, "approve", number))
    assert push.poll(*phone.poll()).requests == []
    assert _audit(push.store, "push.answer") == [("accepted", "approved"), ("rejected", "closed")]


def test_refused_answers_are_audited(push: PushService) -> None:
    phone = _activated(push)
    d, _ = _open(push)
    assert d.pending is not None
    push_id, number, _ = d.pending
    nonce = push.poll(*phone.poll()).requests[0].nonce
    with pytest.raises(DeviceRefused, match="nonce"):
        push.answer(*phone.answer(push_id, proto.new_nonce(), "approve", number))
    payload, _ = phone.answer(push_id, nonce, "approve", number)
    forged = proto.sign_message(ec.generate_private_key(ec.SECP256R1()), proto.parse(
        proto.unb64u(payload)))[1]  # fmt: skip
    with pytest.raises(DeviceRefused, match="signature"):
        push.answer(payload, forged)
    wrong = "10" if number != "10" else "11"
    assert push.answer(*phone.answer(push_id, nonce, "approve", wrong)).status == "denied"
    assert _audit(push.store, "push.answer") == [
        ("rejected", "nonce"),
        ("rejected", "device"),
        ("rejected", "wrong_number"),
    ]
    push.requests.min_gap = 0
    d, _ = _open(push, "r2")
    assert d.pending is not None
    nonce = push.poll(*phone.poll()).requests[0].nonce
    phone.counter = 1  # a replay: a counter the device used before
    with pytest.raises(DeviceRefused, match="replay"):
        push.answer(*phone.answer(d.pending[0], nonce, "deny", ""))
    assert push.outcome(d.pending[0], "app").status == "pending"


def test_a_fraud_report_blocks_the_users_pushes(push: PushService) -> None:
    phone = _activated(push)
    d, _ = _open(push)
    assert d.pending is not None
    nonce = push.poll(*phone.poll()).requests[0].nonce
    assert push.answer(*phone.answer(d.pending[0], nonce, "fraud", "")).status == "fraud"
    assert _audit(push.store, "fraud.report") == [("ok", "block_push")]
    # The report's row carries where the reported sign-in came from (the person's notice says
    # it), sealed for the person, and the client it came through.
    with push.store.read() as conn:
        row = conn.execute(select(t.audit).where(t.audit.c.action == "fraud.report")).one()
    assert row.client == "app" and "10.0.0.1" not in row.source_enc
    assert open_origin(push.store.box, "alice", row.source_enc) == Origin("10.0.0.1")
    blocked, opened = _open(push, "r2")
    assert blocked.reason is Reason.PUSH_BLOCKED and opened is None
    assert push.unblock("alice") and not push.unblock("alice")
    push.requests.min_gap = 0
    again, opened = _open(push, "r3")
    assert again.reason is Reason.PENDING and opened is not None


@pytest.mark.parametrize("role", [membership.SUBORDINATE, membership.HANDOVER])
def test_push_calls_are_the_masters(push: PushService, role: str) -> None:
    phone = _activated(push)
    d, _ = _open(push)
    assert d.pending is not None
    m = membership.Membership("f1", role, 1, "http://master:8480", bytes(32))
    with push.store.write() as conn:
        membership.save(push.store, conn, m)
    push_id = d.pending[0]
    calls = {
        "issue_activation": lambda: push.issue_activation("alice"),
        "activate": lambda: push.activate("A" * 16, "ES256", phone.public_key()),
        "poll": lambda: push.poll(*phone.poll()),
        "answer": lambda: push.answer(*phone.answer(push_id, "n" * 22, "deny", "")),
        "outcome": lambda: push.outcome(push_id, "app"),
        "require_master": push.require_master,
    }
    push.handover_wait = 0.0  # a handover that does not end (one waited through: below)
    for name, call in calls.items():
        with pytest.raises(NotMaster, match="http://master:8480") as refused:
            call()
        assert refused.value.master_url == "http://master:8480", name
    assert not push.is_master()
    # Opening one in the authenticator's transaction: pending, with no request here (the
    # caller opens it at the master).
    unopened, opened = _open(push, "r2")
    assert (unopened.reason, unopened.pending, opened) == (Reason.PENDING, None, None)
    assert push.outcome_here(push_id).status == "pending"  # a waiter still reads it here


def test_a_handover_is_waited_through(push: PushService) -> None:
    """The master hands its role over: a push call waits, then is sent to the new master."""
    m = membership.Membership("f1", membership.HANDOVER, 1, "http://old:8480", bytes(32))
    with push.store.write() as conn:
        membership.save(push.store, conn, m)
    done = threading.Event()

    def hand_over() -> None:
        with push.store.write() as conn:
            membership.save(push.store, conn, m.with_master(2, "http://new:8480"))
        done.set()

    timer = threading.Timer(0.3, hand_over)
    timer.start()
    try:
        with pytest.raises(NotMaster, match="http://new:8480"):
            push.require_master()
        assert done.is_set()  # not refused before the handover ended
    finally:
        timer.cancel()


def test_a_fraud_report_runs_the_hook_and_can_lock_instead(store: Store, tmp_path: Path) -> None:
    """``lock_user``: the user is locked; ``fraud_command`` hears of it on stdin."""
    told = tmp_path / "told.json"
    hook = f"sh -c 'cat > {told}.part && mv {told}.part {told}'"
    config = make_config(mobile={"fraud_action": "lock_user", "fraud_command": hook})
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    push = PushService(store, config, accounts)
    phone = _activated(push)
    d, _ = _open(push)
    assert d.pending is not None
    nonce = push.poll(*phone.poll()).requests[0].nonce
    assert push.answer(*phone.answer(d.pending[0], nonce, "fraud", "")).status == "fraud"
    locked = accounts.get_user("alice").locked_until
    assert locked is not None and locked > time.time() + 86400
    wait_for(told.exists, "the fraud command was run", 30)
    event = json.loads(told.read_text())
    assert (event["event"], event["user"], event["action"]) == (
        "fraud.report",
        "alice",
        "lock_user",
    )
    assert event["push_id"] == d.pending[0] and event["device_id"] == phone.device_id
