"""RADIUS caching (``node.radius_cache``) in the authenticator, on both databases: a full success
lets the same person, RADIUS client and Calling-Station-Id in after the password alone, at most
M times within N minutes; never without the password, from another station or client, with no
Calling-Station-Id, after the window, after a disable, a password change, "sign out
everywhere", a lock or a revoked method; every hit audited with the rule's name."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from openmfa.config import Config
from openmfa.core.policy import Rule
from openmfa.core.totp import totp
from openmfa.core.verification import Decision, Reason
from openmfa.errors import InvalidInput
from openmfa.node.accounts import Accounts
from openmfa.node.authenticator import Attempt, Authenticator
from openmfa.node.passwords import set_password
from openmfa.node.policy_rules import PolicyRules
from openmfa.store.database import Store

from .test_policy_enforce import KEY, POLICY, one, rows, setup

VPN = Attempt("alice", "", channel="radius", channel_client="vpn", station="00-11-22-33-44-55")
CACHE = Rule("vpn-cache", channels=("radius",), clients=("vpn",), remember_minutes=10,
             cache_uses=2)  # fmt: skip


def sign_in(auth: Authenticator, now: float, a: Attempt = VPN) -> Decision:
    """The password was right (``node.first_factor``): asked before, then after it."""
    before = one(auth, replace(a, before_first_factor=True), now)
    after = one(auth, replace(a, first_factor_passed=True), now)
    if before.reason is Reason.SKIPPED:
        return after
    assert (after.accepted, after.reason) == (False, Reason.PENDING)
    return before  # pending: the second factor is asked for


def full(auth: Authenticator, now: float, a: Attempt = VPN) -> Decision:
    """A full success: the password, then the code."""
    return one(auth, replace(a, code=totp(KEY, now)), now)


def cached(d: Decision) -> bool:
    return d.accepted and d.reason is Reason.SKIPPED


def test_a_full_success_is_cached_for_m_uses_within_the_window(
    store: Store, config: Config
) -> None:
    setup(store, config, CACHE)
    auth = Authenticator(store, POLICY)
    now = time.time()
    assert not cached(sign_in(auth, now))  # nothing cached yet
    assert full(auth, now).accepted
    assert cached(sign_in(auth, now + 60))
    # Never without the password: a code attempt, or a wrong password, is decided as always.
    assert one(auth, replace(VPN, code="000000"), now + 61).reason is Reason.WRONG_CODE
    d = one(auth, replace(VPN, first_factor_failed=True), now + 62)
    assert d.reason is Reason.WRONG_PASSWORD
    assert not cached(sign_in(auth, now + 63, replace(VPN, station="66-77-88-99-aa-bb")))
    assert not cached(sign_in(auth, now + 64, replace(VPN, station="")))
    assert not cached(sign_in(auth, now + 65, replace(VPN, channel_client="other")))
    assert cached(sign_in(auth, now + 120))
    assert not cached(sign_in(auth, now + 121))  # M = 2 used up
    # A new full success opens a new window, which ends after N minutes.
    later = now + 150
    assert full(auth, later).accepted
    assert cached(sign_in(auth, later + 599))
    assert not cached(sign_in(auth, later + 601))
    assert not cached(sign_in(auth, later - 30))  # a success "in the future" is no success
    details = [r[2] for r in rows(store) if r[1] == "skipped"]
    assert details == [
        "second factor cached by policy rule vpn-cache (use 1 of 2)",
        "second factor cached by policy rule vpn-cache (use 2 of 2)",
        "second factor cached by policy rule vpn-cache (use 1 of 2)",
    ]


@pytest.mark.parametrize("event", ["disable", "password", "sign-out", "revoke", "lock"])
def test_never_across_a_disable_a_password_change_a_lock_or_a_revocation(
    store: Store, config: Config, event: str
) -> None:
    setup(store, config, CACHE)
    accounts = Accounts(store, config)
    other = accounts.enroll("alice", "totp").method.id  # a second method (a revocable one)
    auth = Authenticator(store, POLICY)
    now = time.time()
    assert full(auth, now).accepted
    assert cached(sign_in(auth, now + 1))
    later = time.time() + 2
    if event == "disable":
        accounts.update_user("alice", {"enabled": False})
        accounts.update_user("alice", {"enabled": True})
    elif event == "password":
        set_password(store, accounts, "alice", "a-new-password")
    elif event == "sign-out":
        accounts.end_sessions("alice")
    elif event == "revoke":
        accounts.remove_method("alice", other)
    else:
        for i in range(5):  # [policy]'s threshold: locked here, then unlocked by the helpdesk
            one(auth, replace(VPN, first_factor_failed=True), later + i)
        assert one(auth, replace(VPN, before_first_factor=True), later + 5).reason is Reason.LOCKED
        accounts.unlock("alice")
    assert not cached(sign_in(auth, later + 10))


def test_a_rule_that_caches_is_a_radius_rule_with_a_window(store: Store, config: Config) -> None:
    setup(store, config)
    rules = PolicyRules(store)
    for bad, says in (
        (replace(CACHE, channels=("radius", "sdk"), clients=()), "--channel radius alone"),
        (replace(CACHE, remember_minutes=0), "--remember-minutes N"),
        (replace(CACHE, cache_uses=1001), "--cache-uses must be from 1 to 1000"),
        (replace(CACHE, second_factor="skip", networks=("10.0.0.0/8",)), "skips it"),
    ):
        with pytest.raises(InvalidInput, match=says):
            rules.add(bad)
    added = rules.add(CACHE)
    assert added.describe() == (
        "channel=radius client=vpn -> second-factor=require remember-minutes=10 cache-uses=2"
    )
    assert rules.all()[0].cache_uses == 2


def test_an_approved_push_starts_a_window_as_a_typed_code_does(
    store: Store, config: Config
) -> None:
    """A push the phone approved after the password (``Attempt.push_approved``, what every
    RADIUS push flow sends once approved): the same window, the same M uses; nothing audited
    for it (the push's answer is); none under a rule that does not cache."""
    setup(store, config, CACHE)
    auth = Authenticator(store, POLICY)
    now = time.time()
    before = len(rows(store))
    approved = one(auth, replace(VPN, push_approved=True), now)
    assert approved.accepted and len(rows(store)) == before
    assert cached(sign_in(auth, now + 60))
    assert cached(sign_in(auth, now + 61))
    assert not cached(sign_in(auth, now + 62))  # M = 2
    other = replace(VPN, channel_client="other", push_approved=True)
    one(auth, other, now + 70)  # no rule caches for that client: no window
    assert not cached(sign_in(auth, now + 71, replace(other, push_approved=False)))
