"""The post-promotion retry (``node.push_sign_in``): a push decided by an authenticator that
still runs as a subordinate's is decided again while the data file says this node is the
master, and opened once the authenticator catches up; on a subordinate it is left to the
caller at once; the retry ends after its tries."""

from __future__ import annotations

import asyncio
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from openmfa.config import Config
from openmfa.core import push as proto
from openmfa.core.verification import Decision, Reason, VerifyPolicy
from openmfa.errors import NotMaster, OpenMfaError
from openmfa.farm import membership
from openmfa.node.accounts import Accounts
from openmfa.node.authenticator import Attempt, Authenticator
from openmfa.node.commit_queue import CommitQueue, Result
from openmfa.node.push import PushService
from openmfa.node.push_sign_in import PROMOTED_PAUSE, PROMOTED_TRIES, decide_push, unopened
from openmfa.store.database import Store


class LateRound:
    """A subordinate's claim round that asks nothing of a master: the authenticator decides
    as a subordinate's. After ``batches`` batches the node's role reaches the authenticator
    (as the farm watcher's tick does: between two batches, on the commit thread)."""

    def __init__(self, batches: int) -> None:
        self.batches = batches
        self.runs = 0
        self.queue: CommitQueue | None = None

    def run(
        self, auth: Authenticator, attempts: list[Attempt], now: float
    ) -> list[Decision | OpenMfaError]:
        self.runs += 1
        if self.runs == self.batches and self.queue is not None:
            self.queue.call(lambda: auth.set_role(None, None))
        return auth.decide(attempts, now, None)

    def close(self) -> None:
        pass


@pytest.fixture
def push(store: Store, config: Config) -> PushService:
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    service = PushService(store, config, accounts)
    service.requests.min_gap = 0
    code = service.issue_activation("alice").code
    spki = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    service.activate(code, "ES256", proto.b64u(spki))
    return service


def _run(
    push: PushService,
    late: LateRound,
    code: str = "push",
    tries: int = 5,
    here: bool = False,
    asked: bool = False,
    may_push: bool = True,
) -> Result:
    auth = Authenticator(push.store, VerifyPolicy(), round=late, push=push)

    async def scenario() -> Result:
        queue = CommitQueue(auth)
        late.queue = queue
        queue.start()
        try:
            attempt = Attempt(
                "alice", code, client="app", request_id=f"r{time.time()}", push=may_push
            )
            return await decide_push(
                queue, attempt, push, here=here, asked=asked, tries=tries, pause=0.01
            )
        finally:
            queue.stop()

    return asyncio.run(scenario())


def test_one_pair_of_numbers_five_seconds_at_most() -> None:
    assert PROMOTED_TRIES * PROMOTED_PAUSE <= 5.0


def test_a_just_promoted_master_opens_the_push_once_its_authenticator_knows(
    push: PushService,
) -> None:
    late = LateRound(batches=3)
    d = _run(push, late)
    assert isinstance(d, Decision) and d.reason is Reason.PENDING and d.pending is not None
    assert late.runs == 3  # three decisions as a subordinate's, then one that opened it
    assert push.outcome(d.pending[0]).status == "pending"


def test_a_subordinate_leaves_the_push_to_its_master_at_once(push: PushService) -> None:
    m = membership.Membership("f1", membership.SUBORDINATE, 1, "http://master:8480", bytes(32))
    with push.store.write() as conn:
        membership.save(push.store, conn, m)
    late = LateRound(batches=3)
    d = _run(push, late)
    assert unopened(d) and late.runs == 1


def test_the_retry_ends_after_its_tries(push: PushService) -> None:
    late = LateRound(batches=100)
    d = _run(push, late, tries=4)
    assert unopened(d) and late.runs == 4


def test_a_decision_that_is_no_push_is_not_retried(push: PushService) -> None:
    late = LateRound(batches=100)
    d = _run(push, late, code="000000")
    assert isinstance(d, Decision) and d.reason is Reason.WRONG_CODE and late.runs == 1


def test_a_caller_that_cannot_open_elsewhere_is_sent_to_the_master_before_any_decision(
    push: PushService,
) -> None:
    """The SDK's /v1/authenticate and the portal (``here``): a push asked of a subordinate is
    ``not_master`` naming the master, decided nowhere (no audit, no lock counted here)."""
    m = membership.Membership("f1", membership.SUBORDINATE, 1, "http://master:8480", bytes(32))
    with push.store.write() as conn:
        membership.save(push.store, conn, m)
    push.handover_wait = 0
    late = LateRound(batches=3)
    with pytest.raises(NotMaster) as refused:
        _run(push, late, here=True, asked=True)
    assert refused.value.master_url == "http://master:8480" and late.runs == 0


def test_a_code_that_reads_push_from_a_key_that_may_not_push_is_decided_there(
    push: PushService,
) -> None:
    """Not asked by name, and the key may not push: the subordinate decides it (push
    unavailable), and the master's address is not given to such a caller."""
    m = membership.Membership("f1", membership.SUBORDINATE, 1, "http://master:8480", bytes(32))
    with push.store.write() as conn:
        membership.save(push.store, conn, m)
    push.handover_wait = 0
    late = LateRound(batches=3)
    d = _run(push, late, here=True, may_push=False)
    assert isinstance(d, Decision) and not d.accepted and not unopened(d)
    assert late.runs == 1


def test_a_push_still_unopened_at_the_end_is_not_master_for_such_a_caller(
    push: PushService,
) -> None:
    """The master's authenticator never caught up within the tries: refused, not a pending
    answer without a push to collect."""
    late = LateRound(batches=100)

    def demoted() -> None:  # made a subordinate while the sign-in was decided
        m = membership.Membership("f1", membership.SUBORDINATE, 2, "http://new:8480", bytes(32))
        with push.store.write() as conn:
            membership.save(push.store, conn, m)

    original = late.run

    def run(
        auth: Authenticator, attempts: list[Attempt], now: float
    ) -> list[Decision | OpenMfaError]:
        out = original(auth, attempts, now)
        if late.runs == 2:
            demoted()
        return out

    late.run = run  # type: ignore[method-assign]
    push.handover_wait = 0
    with pytest.raises(NotMaster):
        _run(push, late, tries=4, here=True)
