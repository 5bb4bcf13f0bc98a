"""The User Portal's sign-in steps (``node.portal_sign_in``) against a real data file and commit
queue: the lock and a wrong password at the first step, self-enrollment, what a ticket says,
and the second step's codes and passkeys."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from openmfa.config import Config
from openmfa.core.lockout import LockoutPolicy
from openmfa.core.totp import totp
from openmfa.core.verification import VerifyPolicy
from openmfa.errors import InvalidInput, Unauthorized
from openmfa.farm.push_relay import wait_outcome
from openmfa.node import audit
from openmfa.node.accounts import Accounts
from openmfa.node.authenticator import Authenticator
from openmfa.node.commit_queue import CommitQueue
from openmfa.node.first_factor import PasswordCheck
from openmfa.node.passkeys import Passkeys
from openmfa.node.passwords import set_password
from openmfa.node.portal import CHALLENGE, SESSION, TICKET, PortalTokens
from openmfa.node.portal_policy import PortalPolicy
from openmfa.node.portal_sign_in import SignInSteps
from openmfa.node.push import PushService
from openmfa.node.push_hub import PushHub
from openmfa.radius.primary import LocalPasswords
from openmfa.store.database import Store
from tests.conftest import make_config

T = TypeVar("T")
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PASSWORD = "correct horse"


class Directory:
    """A first-factor backend other than the node's own passwords, that says who asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def check(self, user: str, password: str) -> bool:
        self.asked.append((user, password))
        return password == "directory says yes"


def steps_for(
    store: Store, config: Config, queue: CommitQueue, checks: dict[str, PasswordCheck]
) -> SignInSteps:
    accounts = Accounts(store, config)
    portal = PortalTokens(store, config)
    push = PushService(store, config, accounts)
    passkeys = Passkeys(accounts, portal, config)
    policy = PortalPolicy(store, VerifyPolicy())
    return SignInSteps(
        store, queue, accounts, portal, push, PushHub(), passkeys, checks, wait_outcome, policy
    )


def run(store: Store, config: Config, scenario: Callable[[SignInSteps], Awaitable[T]]) -> T:
    """``scenario`` with a sign-in service on a running commit queue (lock after 3 failures)."""
    auth = Authenticator(store, VerifyPolicy(lockout=LockoutPolicy(threshold=3, minutes=15)))
    checks: dict[str, PasswordCheck] = {"local": LocalPasswords(store), "ldap": Directory()}

    async def go() -> T:
        queue = CommitQueue(auth)
        queue.start()
        try:
            return await scenario(steps_for(store, config, queue, checks))
        finally:
            queue.stop()

    return asyncio.run(go())


def with_totp(store: Store, config: Config, name: str) -> Accounts:
    accounts = Accounts(store, config)
    accounts.add_user(name)
    set_password(store, accounts, name, PASSWORD)
    accounts.enroll(name, "totp", secret=SECRET, label="phone")
    return accounts


def code_now() -> str:
    return totp(base64.b32decode(SECRET), time.time())


def rows(store: Store, user: str) -> list[tuple[str, str, str]]:
    return [(e.action, e.result, e.reason) for e in audit.query(store, user=user)]


def test_a_right_password_gives_a_ticket_naming_the_users_methods(
    store: Store, config: Config
) -> None:
    accounts = with_totp(store, config, "alice")
    accounts.enroll("alice", "backup-codes")
    totp_id = next(m.id for m in accounts.list_methods("alice") if m.kind == "totp")
    accounts.set_default_method("alice", totp_id)

    async def scenario(s: SignInSteps) -> None:
        step = await s.first("alice", PASSWORD, "portal-key", "r1", None)
        assert step.accepted and step.reason == "ok" and not step.token
        assert step.prefer == "totp"
        assert step.kinds == ["backup-codes", "totp"]
        grant = s.portal.check(step.ticket, TICKET, "portal-key", step.expires_at - 1)
        assert grant.user == "alice"

    run(store, config, scenario)
    events = audit.query(store, user="alice", actions=("portal.sign_in",))
    assert [(e.result, e.detail, e.request_id) for e in events] == [
        ("ok", "first factor (local)", "r1")
    ]


def test_wrong_passwords_lock_and_a_locked_users_password_is_not_checked(
    store: Store, config: Config
) -> None:
    with_totp(store, config, "bob")

    async def scenario(s: SignInSteps) -> list[tuple[bool, str, str]]:
        said = []
        for password in ["wrong one", "wrong two", "wrong three", PASSWORD]:
            step = await s.first("bob", password, "portal-key", "r2", None)
            said.append((step.accepted, step.reason, step.ticket))
        return said

    said = run(store, config, scenario)
    assert said == [
        (False, "wrong_password", ""),
        (False, "wrong_password", ""),
        (False, "wrong_password", ""),  # the third locks ...
        (False, "locked", ""),  # ... so the right one is not even checked
    ]
    found = rows(store, "bob")
    assert found.count(("portal.sign_in", "rejected", "wrong_password")) == 3
    assert ("portal.sign_in", "ok", "") not in found
    assert ("lockout", "ok", "wrong_password") in found
    assert Accounts(store, config).get_user("bob").locked_until is not None


def test_an_unknown_user_is_told_wrong_password(store: Store, config: Config) -> None:
    async def scenario(s: SignInSteps) -> tuple[bool, str]:
        step = await s.first("nobody", PASSWORD, "portal-key", "r3", None)
        return step.accepted, step.reason

    assert run(store, config, scenario) == (False, "wrong_password")


def test_the_check_portal_primary_names_is_the_one_asked(store: Store, config: Config) -> None:
    with_totp(store, config, "carol")
    ldap = make_config(portal={"primary": "ldap"})
    auth = Authenticator(store, VerifyPolicy(lockout=LockoutPolicy(threshold=3, minutes=15)))
    directory = Directory()
    checks: dict[str, PasswordCheck] = {"local": LocalPasswords(store), "ldap": directory}

    async def go() -> list[str]:
        queue = CommitQueue(auth)
        queue.start()
        try:
            s = steps_for(store, ldap, queue, checks)
            own = await s.first("carol", PASSWORD, "portal-key", "r4", None)
            theirs = await s.first("carol", "directory says yes", "portal-key", "r4", None)
            return [own.reason, theirs.reason]
        finally:
            queue.stop()

    assert asyncio.run(go()) == ["wrong_password", "ok"]
    assert directory.asked == [("carol", PASSWORD), ("carol", "directory says yes")]
    details = {e.detail for e in audit.query(store, user="carol", actions=("portal.sign_in",))}
    assert details == {"first factor (ldap)"}


def test_self_enroll_signs_in_a_user_without_methods_at_once(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("dave")
    set_password(store, accounts, "dave", PASSWORD)
    with_totp(store, config, "erin")
    enrolling = make_config(portal={"self_enroll": True})

    async def scenario(s: SignInSteps) -> None:
        step = await s.first("dave", PASSWORD, "portal-key", "r5", None)
        assert step.accepted and step.token and not step.ticket
        assert s.portal.check(step.token, SESSION, "portal-key", step.expires_at - 1).user == "dave"
        other = await s.first("erin", PASSWORD, "portal-key", "r5", None)
        assert other.ticket and not other.token  # a method already: the second step as ever

    run(store, enrolling, scenario)
    assert ("portal.self_enroll", "ok", "") in rows(store, "dave")
    assert ("portal.self_enroll", "ok", "") not in rows(store, "erin")

    async def without(s: SignInSteps) -> tuple[str, str]:
        step = await s.first("dave", PASSWORD, "portal-key", "r6", None)
        return step.ticket, step.token

    ticket, token = run(store, config, without)  # self_enroll off: a ticket, and no way on
    assert ticket and not token


def test_the_second_step_takes_a_right_code_and_refuses_a_wrong_one(
    store: Store, config: Config
) -> None:
    with_totp(store, config, "frank")

    async def scenario(s: SignInSteps) -> None:
        first = await s.first("frank", PASSWORD, "portal-key", "r7", None)
        wrong = await s.second(first.ticket, "portal-key", "r7", None, code="000000")
        assert (wrong.accepted, wrong.reason, wrong.token) == (False, "wrong_code", "")
        right = await s.second(first.ticket, "portal-key", "r7", None, code=code_now())
        assert right.accepted and right.reason == "ok"
        grant = s.portal.check(right.token, SESSION, "portal-key", right.expires_at - 1)
        assert grant.user == "frank" and grant.session_id
        with pytest.raises(Unauthorized):  # a ticket is the portal's it was given to
            await s.second(first.ticket, "other-portal", "r7", None, code=code_now())
        with pytest.raises(InvalidInput, match="send the code"):
            await s.second(first.ticket, "portal-key", "r7", None)
        with pytest.raises(InvalidInput, match="no code with method push"):
            await s.second(first.ticket, "portal-key", "r7", None, code="1", method="push")

    run(store, config, scenario)
    found = rows(store, "frank")
    assert ("authenticate", "rejected", "wrong_code") in found
    assert ("authenticate", "accepted", "ok") in found


def test_a_passkey_sign_in_is_refused_while_locked_and_audited(
    store: Store, config: Config
) -> None:
    with_totp(store, config, "gina")

    async def scenario(s: SignInSteps) -> list[str]:
        now = time.time()
        ticket, _ = s.portal.issue(TICKET, "gina", "portal-key", now)
        extra = {"c": "AAAA", "o": "https://p.example.org", "r": "p.example.org", "p": "sign-in"}
        challenge, _ = s.portal.issue(CHALLENGE, "gina", "portal-key", now, extra)
        wrong = await s.passkey(ticket, "portal-key", "r8", challenge, "{}")
        for _ in range(3):
            await s.first("gina", "wrong", "portal-key", "r8", None)
        locked = await s.passkey(ticket, "portal-key", "r8", challenge, "{}")
        return [wrong.reason, locked.reason]

    assert run(store, config, scenario) == ["wrong_passkey", "locked"]
    found = rows(store, "gina")
    assert found.count(("authenticate", "rejected", "wrong_passkey")) == 1  # not when locked
