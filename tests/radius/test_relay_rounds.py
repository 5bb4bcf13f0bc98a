"""Relayed requests held for a push when the node stops (``openmfa.radius.relay_rounds``): each
is answered at once with its refusal and its push closed, unless the phone answered first; one
whose push is not opened yet is refused and opens none. And the push service's ``close`` on a
real data file: the request reads as expired, the devices no longer see it, an answer to it is
refused, and it is audited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
from sqlalchemy import select

from openmfa.config import Config
from openmfa.core.verification import Decision, Reason
from openmfa.errors import NotMaster, PushClosed
from openmfa.node.accounts import Accounts
from openmfa.node.push import PushService
from openmfa.radius import packet as p
from openmfa.radius.relay_rounds import CLOSED_BECAUSE, HeldRounds, Round
from openmfa.radius.replies import Reply
from openmfa.store import tables as t
from openmfa.store.database import Store
from tests.node.test_push import Phone, _activated, _open

ACCEPT = Reply(p.ACCESS_ACCEPT, [(p.USER_NAME, b"alice")])
REFUSED = Reply(p.ACCESS_REJECT, [(79, b"\x04\x07\x00\x04")])
PUSH_REJECT = Reply(p.ACCESS_REJECT, [(p.REPLY_MESSAGE, b"The phone did not answer in time")])


class Queue:
    """The commit queue's ``call``: run at once (the tests' one thread plays both)."""

    def __init__(self) -> None:
        self.submitted: list[Any] = []

    def call(self, task: Callable[[], None]) -> None:
        task()


class Push:
    def __init__(self, answered_first: tuple[str, ...] = ()) -> None:
        self.closed: list[tuple[str, str]] = []
        self.answered_first = answered_first

    def close(self, push_id: str, reason: str) -> bool:
        if push_id in self.answered_first:
            return False
        self.closed.append((push_id, reason))
        return True


class Hub:
    def __init__(self) -> None:
        self.told: list[str] = []

    def decided(self, push_id: str) -> None:
        self.told.append(push_id)


class Flows:
    """What ``HeldRounds`` uses of ``AccessFlows``."""

    def __init__(self, push: Push) -> None:
        self.held: dict[str, tuple[asyncio.Task[None], Any]] = {}
        self.queue = Queue()
        self.push = push
        self.hub = Hub()
        self._remote_ids: dict[str, float] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, work: Any) -> None:
        self.tasks.add(asyncio.get_running_loop().create_task(work))

    def _on_loop(self, fn: Any, *args: object) -> None:
        self._spawn(fn(*args))

    async def hold(self, push_id: str, respond: Round, answer: asyncio.Future[Reply]) -> None:
        """``flows._hold``: registered while it waits; answers what ``answer`` resolves to."""
        task = asyncio.current_task()
        assert task is not None
        self.held[push_id] = (task, respond)
        try:
            reply = await answer
        finally:
            del self.held[push_id]
        respond(reply)


def started(flows: Flows, sent: list[Reply]) -> tuple[HeldRounds, Round]:
    rounds = HeldRounds(cast(Any, flows))
    return rounds, rounds.start(sent.append, ACCEPT, REFUSED)


async def settle(flows: Flows, rounds: HeldRounds) -> None:
    """``flows.settle``'s loop, for the fakes: end the rounds until nothing is left running."""
    for _ in range(50):
        rounds.end()
        pending = {t for t in flows.tasks if not t.done()}
        if not pending:
            return
        await asyncio.wait(pending, timeout=0.1)
    raise AssertionError("tasks still running")


def test_a_held_round_is_refused_at_once_and_its_push_closed() -> None:
    async def run() -> tuple[Flows, list[Reply], asyncio.Task[None]]:
        flows, sent = Flows(Push()), list[Reply]()
        rounds, round_ = started(flows, sent)
        answer: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        hold = asyncio.get_running_loop().create_task(flows.hold("p1", round_, answer))
        flows.tasks.add(hold)
        await asyncio.sleep(0)
        await settle(flows, rounds)
        assert rounds.stopping
        return flows, sent, hold

    flows, sent, hold = asyncio.run(run())
    assert sent == [REFUSED]  # once, the round's own refusal (an EAP-Failure here)
    assert hold.cancelled() and flows.held == {}
    assert flows.push.closed == [("p1", CLOSED_BECAUSE)]
    assert flows.hub.told == ["p1"]  # waiters and mobile services told: the phone drops it


def test_a_push_approved_first_is_answered_by_its_hold() -> None:
    async def run() -> tuple[Flows, list[Reply]]:
        flows, sent = Flows(Push(answered_first=("p2",))), list[Reply]()
        rounds, round_ = started(flows, sent)
        answer: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        hold = asyncio.get_running_loop().create_task(flows.hold("p2", round_, answer))
        flows.tasks.add(hold)
        await asyncio.sleep(0)
        rounds.end()
        await asyncio.sleep(0.05)
        assert sent == []  # not refused: the phone's answer stands
        answer.set_result(Reply(p.ACCESS_ACCEPT, []))  # (the hold reads it)
        await settle(flows, rounds)
        return flows, sent

    flows, sent = asyncio.run(run())
    assert sent == [ACCEPT]
    assert flows.push.closed == [] and flows.hub.told == []


def test_a_push_at_the_master_is_left_to_expire_but_its_round_is_refused() -> None:
    async def run() -> tuple[Flows, list[Reply], asyncio.Task[None]]:
        flows, sent = Flows(Push()), list[Reply]()
        flows._remote_ids["p3"] = time.monotonic() + 100
        rounds, round_ = started(flows, sent)
        answer: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        hold = asyncio.get_running_loop().create_task(flows.hold("p3", round_, answer))
        flows.tasks.add(hold)
        await asyncio.sleep(0)
        await settle(flows, rounds)
        return flows, sent, hold

    flows, sent, hold = asyncio.run(run())
    assert sent == [REFUSED] and hold.cancelled()
    assert flows.push.closed == []


def test_a_round_not_held_yet_is_refused_and_opens_no_push() -> None:
    called: list[object] = []

    async def run() -> tuple[Flows, list[Reply]]:
        flows, sent = Flows(Push()), list[Reply]()
        rounds, round_ = started(flows, sent)
        then = rounds.decided(round_, called.append)
        await settle(flows, rounds)
        assert sent == [REFUSED]
        # its decision arrives after the stop answered it: the push opened is closed, and the
        # hold is never started (nor a push opened at the master)
        then(Decision(False, Reason.PENDING, "m1", pending=("p4", "", time.time() + 60)))
        then(Decision(False, Reason.PENDING, "m1"))
        await settle(flows, rounds)
        return flows, sent

    flows, sent = asyncio.run(run())
    assert called == [] and sent == [REFUSED]
    assert flows.push.closed == [("p4", CLOSED_BECAUSE)]


def test_after_the_stop_a_decision_that_is_no_push_is_passed_on() -> None:
    called: list[object] = []
    flows, sent = Flows(Push()), list[Reply]()
    rounds, round_ = started(flows, sent)
    refused = Decision(False, Reason.PUSH_LIMITED)
    rounds.decided(round_, called.append)(refused)
    assert called == [refused]  # (the round's answer to it goes through ``Round``, once)
    round_(PUSH_REJECT)
    round_(ACCEPT)
    assert sent == [REFUSED]


# -- the push service's close, on a real data file ---------------------------------------------


@pytest.fixture
def push(store: Store, config: Config) -> PushService:
    Accounts(store, config).add_user("alice")
    return PushService(store, config, Accounts(store, config))


def test_a_closed_push_reads_expired_and_cannot_be_answered(push: PushService) -> None:
    phone: Phone = _activated(push)
    decision, _ = _open(push, "r-close")
    assert decision.pending is not None
    push_id = decision.pending[0]
    assert [r.id for r in push.poll(*phone.poll()).requests] == [push_id]

    assert push.close(push_id, CLOSED_BECAUSE) is True
    assert push.close(push_id, CLOSED_BECAUSE) is False  # once
    outcome = push.outcome(push_id)
    assert outcome.status == "expired" and not outcome.accepted
    assert push.poll(*phone.poll()).requests == []  # the phone no longer shows it
    with push.store.read() as conn:
        nonce = conn.scalar(select(t.push_requests.c.nonce).where(t.push_requests.c.id == push_id))
    with pytest.raises(PushClosed, match="already expired"):
        push.answer(*phone.answer(push_id, str(nonce), "approve", ""))
    a = t.audit
    with push.store.read() as conn:
        rows = conn.execute(
            select(a.c.user_name, a.c.result, a.c.reason, a.c.request_id).where(
                a.c.action == "push.close"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("alice", "ok", CLOSED_BECAUSE, "r-close")]


def test_a_push_answered_first_is_not_closed(push: PushService) -> None:
    phone = _activated(push)
    decision, _ = _open(push, "r-first")
    assert decision.pending is not None
    push_id, number, _ = decision.pending
    (request,) = push.poll(*phone.poll()).requests
    push.answer(*phone.answer(push_id, request.nonce, "approve", number))
    assert push.close(push_id, CLOSED_BECAUSE) is False
    assert push.outcome(push_id).status == "accepted"


def test_only_where_pushes_live(push: PushService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(push, "is_master", lambda: False)
    with pytest.raises(NotMaster):
        push.close("p-nowhere", CLOSED_BECAUSE)
