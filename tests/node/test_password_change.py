"""A person changes their own password (``node.password_change``) against a real data file and
commit queue: the node's own password and a directory's, every refusal (a wrong current
password, which counts toward the lock; too short, too long, the same, a common one; the
directory's own no; a directory out of reach; not changeable here), the other sessions ended
and this one renewed, and the audit — never holding a password."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from openmfa.config import Config
from openmfa.contract import PasswordChanged
from openmfa.core.lockout import LockoutPolicy
from openmfa.core.verification import VerifyPolicy
from openmfa.errors import NotMaster, PrimaryUnavailable
from openmfa.farm import membership
from openmfa.node import audit
from openmfa.node.accounts import Accounts
from openmfa.node.authenticator import Authenticator
from openmfa.node.commit_queue import CommitQueue
from openmfa.node.first_factor import PasswordCheck
from openmfa.node.password_change import PasswordChange, is_common, problem
from openmfa.node.passwords import check_password, set_password
from openmfa.node.portal import FACTOR, SESSION, PortalTokens
from openmfa.node.session_ends import SessionEnds
from openmfa.radius.primary import LocalPasswords
from openmfa.store.database import Store
from tests.conftest import make_config

T = TypeVar("T")
OLD = "an old portal password"
NEW = "rivers of tea and cardboard"


class Directory:
    """A directory that checks and changes passwords (the node's side of it: the real one is
    ``directory.password``, tested against slapd and Samba in tests/e2e)."""

    def __init__(self, refuse: str | None = None, down: bool = False) -> None:
        self.password = OLD
        self.refuse, self.down = refuse, down
        self.changes: list[tuple[str, str, str]] = []

    async def check(self, user: str, password: str) -> bool:
        return password == self.password

    async def change(self, user: str, current: str, new: str) -> str | None:
        if self.down:
            raise PrimaryUnavailable("LDAP at ldap://127.0.0.1:1: connection refused")
        self.changes.append((user, current, new))
        if self.refuse is not None:
            return self.refuse
        self.password = new
        return None


def run(
    store: Store,
    config: Config,
    scenario: Callable[[PasswordChange], Awaitable[T]],
    directory: Directory | None = None,
) -> T:
    """``scenario`` with the service on a running commit queue (lock after 3 failures)."""
    auth = Authenticator(store, VerifyPolicy(lockout=LockoutPolicy(threshold=3, minutes=15)))
    directory = directory or Directory()
    checks: dict[str, PasswordCheck] = {"local": LocalPasswords(store), "ldap": directory}
    accounts = Accounts(store, config)

    async def go() -> T:
        queue = CommitQueue(auth)
        queue.start()
        try:
            portal = PortalTokens(store, config)
            service = PasswordChange(store, queue, accounts, portal, checks, directory, config)
            return await scenario(service)
        finally:
            queue.stop()

    return asyncio.run(go())


def person(store: Store, config: Config, name: str = "alice") -> Accounts:
    accounts = Accounts(store, config)
    accounts.add_user(name)
    set_password(store, accounts, name, OLD)
    return accounts


def rows(store: Store, user: str) -> list[tuple[str, str, str]]:
    return [
        (e.result, e.reason, e.detail)
        for e in audit.query(store, user=user, actions=("password.change",))
    ]


def test_the_nodes_own_password_changed_other_sessions_ended_this_one_renewed(
    store: Store, config: Config
) -> None:
    person(store, config)
    portal = PortalTokens(store, config)
    other, _ = portal.issue(SESSION, "alice", "portal-key", time.time() - 5)
    mine, _ = portal.issue(SESSION, "alice", "portal-key", time.time() - 1, {FACTOR: "otp"})

    async def scenario(s: PasswordChange) -> PasswordChanged:
        grant = s.portal.check(mine, SESSION, "portal-key", time.time())
        return await s.change(grant, "portal-key", "r1", None, OLD, NEW)

    done = run(store, config, scenario)
    assert done.changed and done.reason == "ok" and done.token
    assert check_password(store, "alice", NEW) and not check_password(store, "alice", OLD)
    now = time.time()
    renewed = portal.check(done.token, SESSION, "portal-key", now)
    assert renewed.factor == "otp"  # the same sign-in goes on
    accounts, ends = Accounts(store, config), SessionEnds(store)
    after = accounts.sessions_after("alice")
    for token in (other, mine):
        grant = portal.check(token, SESSION, "portal-key", now)
        assert grant.issued_at <= after
        assert ends.ended("alice", grant.session_id, grant.issued_at, now)
    assert renewed.issued_at > after
    assert not ends.ended("alice", renewed.session_id, renewed.issued_at, now)
    assert rows(store, "alice") == [("ok", "", "local; every other session ended")]
    every = [str(e) for e in audit.query(store, user="alice")]
    assert not any(NEW in e or OLD in e for e in every)


@pytest.mark.parametrize(
    ("new", "reason"),
    [
        ("short one", "too_short"),
        ("x" * 60 + "y" * 69, "too_long"),
        (OLD, "same"),
        ("Password1234!", "common"),
        ("Welkom2024!!", "common"),
        ("  qwertyuiopasdf ", "common"),
        ("123456789012", "common"),
        ("alice1234567", "common"),
        ("abcabcabcabcabc", "common"),
        ("passwordpassword", "common"),
        ("9876543210!!", "common"),
    ],
)
def test_a_new_password_refused_says_why_and_changes_nothing(
    store: Store, config: Config, new: str, reason: str
) -> None:
    person(store, config)

    async def scenario(s: PasswordChange) -> PasswordChanged:
        token, _ = s.portal.issue(SESSION, "alice", "portal-key", time.time())
        grant = s.portal.check(token, SESSION, "portal-key", time.time())
        return await s.change(grant, "portal-key", "r2", None, OLD, new)

    done = run(store, config, scenario)
    assert (done.changed, done.reason, done.token, done.min_length) == (False, reason, "", 12)
    assert check_password(store, "alice", OLD)
    assert rows(store, "alice") == [("rejected", reason, "")]


def test_a_wrong_current_password_counts_toward_the_lock(store: Store, config: Config) -> None:
    person(store, config)

    async def scenario(s: PasswordChange) -> list[str]:
        token, _ = s.portal.issue(SESSION, "alice", "portal-key", time.time())
        grant = s.portal.check(token, SESSION, "portal-key", time.time())
        said: list[str] = []
        for current in ["wrong one", "wrong two", "wrong three", OLD]:
            done = await s.change(grant, "portal-key", "r3", None, current, NEW)
            said.append(done.reason)
        return said

    assert run(store, config, scenario) == [
        "wrong_password",
        "wrong_password",
        "wrong_password",  # the third locks ...
        "locked",  # ... so the right one is not even checked
    ]
    assert check_password(store, "alice", OLD)
    first = audit.query(store, user="alice", actions=("portal.sign_in",))
    assert [e.reason for e in first] == ["wrong_password"] * 3


def test_rules_of_a_new_password() -> None:
    assert problem(NEW, OLD, "alice", 12) == ""
    assert not is_common("correct horse battery staple", "alice")
    assert not is_common("Zeven-Blauwe-Fietsen", "alice")
    assert is_common("ADA@example.org!!", "ada@example.org")
    assert is_common("wachtwoord123", "bob")
    assert problem("eleven char", OLD, "alice", 12) == "too_short"
    assert problem("eleven char", OLD, "alice", 11) == ""


def test_no_configuration_asks_less_than_eight_characters(store: Store) -> None:
    config = make_config(portal={"password_min_length": 4})
    person(store, config)

    async def scenario(s: PasswordChange) -> PasswordChanged:
        token, _ = s.portal.issue(SESSION, "alice", "portal-key", time.time())
        grant = s.portal.check(token, SESSION, "portal-key", time.time())
        return await s.change(grant, "portal-key", "r4", None, OLD, "Zq7#vU2")

    done = run(store, config, scenario)
    assert (done.reason, done.min_length) == ("too_short", 8)


def test_a_directory_password_only_where_allowed_and_its_refusal_in_its_own_words(
    store: Store,
) -> None:
    closed = make_config(portal={"primary": "ldap"})
    person(store, closed)
    directory = Directory()

    async def change(s: PasswordChange) -> tuple[str, PasswordChanged]:
        token, _ = s.portal.issue(SESSION, "alice", "portal-key", time.time())
        grant = s.portal.check(token, SESSION, "portal-key", time.time())
        return s.policy().where, await s.change(grant, "portal-key", "r5", None, OLD, NEW)

    where, done = run(store, closed, change, directory)
    assert (where, done.reason, directory.changes) == ("", "not_here", [])

    open_ = make_config(portal={"primary": "ldap", "password_change": True})
    refusing = Directory(refuse="Password fails quality checking policy")
    where, done = run(store, open_, change, refusing)
    assert (where, done.changed, done.reason) == ("directory", False, "refused")
    assert done.detail == "Password fails quality checking policy"

    where, done = run(store, open_, change, Directory(down=True))
    assert (done.reason, done.detail) == ("unavailable", "")  # the address stays in the audit

    where, done = run(store, open_, change, directory)
    assert done.changed and directory.changes == [("alice", OLD, NEW)]
    assert check_password(store, "alice", OLD)  # the node's own is not the directory's
    assert [r[:2] for r in rows(store, "alice")] == [
        ("rejected", "not_here"),
        ("rejected", "refused"),
        ("rejected", "unavailable"),
        ("ok", ""),
    ]


def test_a_subordinate_sends_the_change_to_its_master_before_checking_anything(
    store: Store,
) -> None:
    config = make_config(portal={"primary": "ldap", "password_change": True})
    person(store, config)
    m = membership.Membership("f1", membership.SUBORDINATE, 1, "http://master:8480", bytes(32))
    with store.write() as conn:
        membership.save(store, conn, m)
    directory = Directory()

    async def scenario(s: PasswordChange) -> None:
        token, _ = s.portal.issue(SESSION, "alice", "portal-key", time.time())
        grant = s.portal.check(token, SESSION, "portal-key", time.time())
        with pytest.raises(NotMaster, match="http://master:8480"):
            await s.change(grant, "portal-key", "r6", None, "a wrong one", NEW)

    run(store, config, scenario, directory)
    assert directory.changes == [] and directory.password == OLD
    assert audit.query(store, user="alice", actions=("portal.sign_in",)) == []  # not counted
