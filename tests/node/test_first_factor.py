"""The node's one first-factor rule (``node.first_factor``), which the portal and every RADIUS
flow with a password use: the lock is asked first and a locked user's password is not checked;
a wrong password counts toward the lock; a right one counts nothing."""

from __future__ import annotations

import asyncio

from openmfa.config import Config
from openmfa.core.lockout import LockoutPolicy
from openmfa.core.verification import Decision, Reason, VerifyPolicy
from openmfa.node import audit
from openmfa.node.accounts import Accounts
from openmfa.node.authenticator import Attempt, Authenticator
from openmfa.node.commit_queue import CommitQueue
from openmfa.node.first_factor import FirstFactor
from openmfa.store.changes import AuditEvent
from openmfa.store.database import Store


class Backend:
    """A password backend that says who asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def check(self, user: str, password: str) -> bool:
        self.asked.append(password)
        return password == "right"


def test_the_lock_is_asked_first_and_wrong_passwords_count(store: Store, config: Config) -> None:
    Accounts(store, config).add_user("alice")
    auth = Authenticator(store, VerifyPolicy(lockout=LockoutPolicy(threshold=3, minutes=15)))
    backend = Backend()
    asked = Attempt("alice", "", client="radius:gw", request_id="r1", push=False)
    event = AuditEvent("primary", "accepted", user_name="alice", client="radius:gw")

    async def scenario() -> list[Decision]:
        queue = CommitQueue(auth)
        queue.start()
        first = FirstFactor(store, queue)
        try:
            said = [await first.check(backend, asked, "right", event)]
            said += [await first.check(backend, asked, "wrong", event) for _ in range(3)]
            said.append(await first.check(backend, asked, "right", event))
            said.append(await first.failed(asked))  # (combined: no code in it) not counted
            await asyncio.to_thread(Accounts(store, config).unlock, "alice")
            said.append(await first.check(backend, asked, "right", event))
            nobody = AuditEvent("primary", "accepted", user_name="nobody", client="radius:gw")
            said.append(await first.check(backend, replace_user(asked), "guess", nobody))
            return said
        finally:
            queue.stop()

    said = asyncio.run(scenario())
    assert [d.reason for d in said] == [
        Reason.OK,
        Reason.WRONG_PASSWORD,
        Reason.WRONG_PASSWORD,
        Reason.WRONG_PASSWORD,  # the third locks ...
        Reason.LOCKED,  # ... so the right password is not even checked
        Reason.LOCKED,
        Reason.OK,
        Reason.UNKNOWN_USER,  # not locked: checked (at a known user's cost) and refused
    ]
    assert said[3].locked_until is not None
    assert backend.asked == ["right", "wrong", "wrong", "wrong", "right", "guess"]
    rows = [(e.action, e.result, e.reason) for e in audit.query(store, user="alice")]
    assert rows.count(("authenticate", "rejected", "wrong_password")) == 3
    assert rows.count(("primary", "rejected", "wrong_password")) == 3
    assert rows.count(("primary", "accepted", "")) == 2
    assert rows.count(("authenticate", "rejected", "locked")) == 2  # each refusal is audited
    assert ("lockout", "ok", "wrong_password") in rows


def replace_user(a: Attempt) -> Attempt:
    return Attempt("nobody", "", client=a.client, request_id=a.request_id, push=False)


def test_a_field_read_two_ways_counts_one_failure(store: Store, config: Config) -> None:
    """Password and code in one field, for a user whose codes differ in length: each reading
    is tried; the right one wins, and none right is one failure, not one per reading."""
    Accounts(store, config).add_user("bob")
    auth = Authenticator(store, VerifyPolicy(lockout=LockoutPolicy(threshold=3, minutes=15)))
    backend = Backend()
    asked = Attempt("bob", "", client="radius:gw", request_id="r2", push=False)
    event = AuditEvent("primary", "accepted", user_name="bob", client="radius:gw")

    async def scenario() -> list[tuple[Decision, int]]:
        queue = CommitQueue(auth)
        queue.start()
        first = FirstFactor(store, queue)
        try:
            return [
                await first.check_any(backend, asked, ["wrong", "right"], event),
                await first.check_any(backend, asked, ["wrong", "also wrong"], event),
                await first.check_any(backend, asked, [], event),
            ]
        finally:
            queue.stop()

    said = asyncio.run(scenario())
    assert [(d.reason, i) for d, i in said] == [
        (Reason.OK, 1),
        (Reason.WRONG_PASSWORD, -1),
        (Reason.WRONG_PASSWORD, -1),
    ]
    rows = [(e.action, e.result, e.reason) for e in audit.query(store, user="bob")]
    assert rows.count(("authenticate", "rejected", "wrong_password")) == 2


def test_an_unknown_or_disabled_persons_right_password_is_never_right(
    store: Store, config: Config
) -> None:
    """A directory behind the node may know a password for a name the node does not know, or
    has disabled: checked all the same (the same work), never taken, nothing counted."""
    accounts = Accounts(store, config)
    accounts.add_user("dora")
    accounts.update_user("dora", {"enabled": False})
    auth = Authenticator(store, VerifyPolicy(lockout=LockoutPolicy(threshold=3, minutes=15)))
    backend = Backend()
    event = AuditEvent("primary", "accepted", user_name="x", client="radius:gw")

    async def scenario() -> list[Decision]:
        queue = CommitQueue(auth)
        queue.start()
        first = FirstFactor(store, queue)
        try:
            return [
                await first.check(
                    backend, Attempt(name, "", client="radius:gw", push=False), "right", event
                )
                for name in ("dora", "ghost", "dora", "ghost")
            ]
        finally:
            queue.stop()

    said = asyncio.run(scenario())
    assert [d.reason for d in said] == [Reason.DISABLED, Reason.UNKNOWN_USER] * 2
    assert not any(d.accepted for d in said)
    assert backend.asked == ["right"] * 4  # the same work as for anyone
