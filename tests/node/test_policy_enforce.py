"""What a policy rule changes in the authenticator (``node.policy_enforce``), on both
databases: a trusted network's skip (at once for the SDK; after the password for RADIUS), a
method the rule does not allow refused as ``method_not_allowed``, a numbered push refused where
the channel cannot show a number, the rule's lockout threshold, groups, and every decision a
rule changed audited with the rule's name. An attempt of a channel that does not enforce rules
yet is decided as before."""

from __future__ import annotations

import base64
import time
from dataclasses import replace

from sqlalchemy import select

from openmfa.config import Config
from openmfa.core.lockout import LockoutPolicy
from openmfa.core.policy import Rule
from openmfa.core.totp import totp
from openmfa.core.verification import Decision, Reason, VerifyPolicy
from openmfa.node.accounts import Accounts
from openmfa.node.authenticator import Attempt, Authenticator
from openmfa.node.groups import Groups
from openmfa.node.policy_rules import PolicyRules
from openmfa.store import tables as t
from openmfa.store.database import Store

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
KEY = base64.b32decode(SECRET)
POLICY = VerifyPolicy(lockout=LockoutPolicy(threshold=5, minutes=15))
SDK = Attempt("alice", "", channel="sdk", channel_client="app", skippable=True)
RADIUS = Attempt("alice", "", channel="radius", channel_client="vpn")


def one(auth: Authenticator, a: Attempt, now: float) -> Decision:
    (d,) = auth.run([a], now=now)
    assert isinstance(d, Decision)
    return d


def rows(store: Store) -> list[tuple[str, str, str]]:
    """The authentication audit rows, oldest first."""
    a = t.audit
    with store.read() as conn:
        found = conn.execute(
            select(a.c.result, a.c.reason, a.c.detail)
            .where(a.c.action == "authenticate", a.c.user_name == "alice")
            .order_by(a.c.id)
        ).all()
    return [tuple(r) for r in found]


def setup(store: Store, config: Config, *rules: Rule, allow_no_mfa: bool = False) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    accounts.enroll("alice", "totp", secret=SECRET)
    for rule in rules:
        PolicyRules(store).add(rule, allow_no_mfa=allow_no_mfa)


def test_a_trusted_network_skips_the_second_factor_on_the_sdk(store: Store, config: Config) -> None:
    setup(store, config, Rule("office", networks=("10.0.0.0/8",), second_factor="skip"))
    auth = Authenticator(store, POLICY)
    now = time.time()
    d = one(auth, replace(SDK, network="10.1.2.3"), now)
    assert d.accepted and d.reason is Reason.SKIPPED
    d = one(auth, replace(SDK, network="192.0.2.1", code="000000"), now)
    assert not d.accepted and d.reason is Reason.WRONG_CODE
    d = one(auth, replace(SDK, network=""), now)  # no address vouched for: no network
    assert not d.accepted
    d = one(auth, Attempt("alice", "", network="10.1.2.3", skippable=True), now)  # no channel
    assert not d.accepted
    assert rows(store)[0] == ("accepted", "skipped", "second factor skipped by policy rule office")
    assert [r[1] for r in rows(store)[1:]] == ["wrong_code", "malformed", "malformed"]


def test_radius_skips_only_after_the_password(store: Store, config: Config) -> None:
    setup(store, config, Rule("office", channels=("radius",), networks=("10.0.0.0/8",),
                              second_factor="skip"))  # fmt: skip
    auth = Authenticator(store, POLICY)
    now = time.time()
    inside = replace(RADIUS, network="10.9.9.9")
    # Before the password: "skipped" (not accepted, nothing audited); a code attempt: no skip.
    d = one(auth, replace(inside, before_first_factor=True), now)
    assert (d.accepted, d.reason) == (False, Reason.SKIPPED)
    assert one(auth, replace(inside, code="000000"), now).reason is Reason.WRONG_CODE
    d = one(auth, replace(inside, first_factor_passed=True), now)  # the password was right
    assert d.accepted and d.reason is Reason.SKIPPED
    outside = replace(RADIUS, network="192.0.2.1")
    assert one(auth, replace(outside, before_first_factor=True), now).reason is Reason.PENDING
    d = one(auth, replace(outside, first_factor_passed=True), now)
    assert (d.accepted, d.reason) == (False, Reason.PENDING)  # go on to the second factor
    # A wrong password is a failure, trusted network or not.
    d = one(auth, replace(inside, first_factor_failed=True), now)
    assert d.reason is Reason.WRONG_PASSWORD
    assert [r[:2] for r in rows(store)] == [
        ("rejected", "wrong_code"),
        ("accepted", "skipped"),
        ("rejected", "wrong_password"),
    ]


def test_a_locked_person_is_not_let_in_by_a_skip(store: Store, config: Config) -> None:
    setup(store, config, Rule("office", networks=("10.0.0.0/8",), second_factor="skip",
                              lockout_threshold=2))  # fmt: skip
    auth = Authenticator(store, POLICY)
    now = time.time()
    outside = replace(SDK, network="192.0.2.1", code="000000")
    one(auth, outside, now)
    d = one(auth, outside, now)  # [policy] says 5; the rule does not match here: not locked
    assert not d.locked_until
    strict = Rule("strict", lockout_threshold=2)
    PolicyRules(store).add(strict)
    d = one(auth, outside, now)  # failures: 3 >= 2 under the rule "strict"
    assert d.reason is Reason.WRONG_CODE and d.locked_until
    assert rows(store)[-1][2] == "lockout threshold 2 of policy rule strict"
    d = one(auth, replace(SDK, network="10.1.2.3"), now)
    assert d.reason is Reason.LOCKED


def test_a_method_the_rule_does_not_allow_is_refused(store: Store, config: Config) -> None:
    setup(store, config, Rule("admins", groups=("admins",), methods=("passkey", "push"),
                              numbered=True))  # fmt: skip
    accounts = Accounts(store, config)
    auth = Authenticator(store, POLICY)
    now = time.time()
    code = totp(KEY, now)
    assert one(auth, replace(SDK, code=code), now).accepted  # not in the group: any method
    Groups(store, accounts).add("alice", "admins")
    later = now + 30
    d = one(auth, replace(SDK, code=totp(KEY, later)), later)
    assert (d.accepted, d.reason) == (False, Reason.METHOD_NOT_ALLOWED) and d.method_id
    d = one(auth, replace(SDK, code="000000"), later)
    assert d.reason is Reason.WRONG_CODE  # a wrong code is a wrong code
    assert rows(store)[1] == (
        "rejected",
        "method_not_allowed",
        "method totp not allowed by policy rule admins",
    )
    # The code was not used up: out of the group again, it is taken.
    accounts_groups = Groups(store, accounts)
    accounts_groups.remove("alice", "admins")
    assert one(auth, replace(SDK, code=totp(KEY, later)), later).accepted


def test_a_numbered_push_where_the_channel_cannot_show_a_number(
    store: Store, config: Config
) -> None:
    setup(store, config, Rule("vpn", channels=("radius",), methods=("push", "totp"),
                              numbered=True))  # fmt: skip
    auth = Authenticator(store, POLICY)
    now = time.time()
    # The person has no device: "push" is refused as malformed for any channel; with a TOTP
    # app allowed, their code is taken on a holding (unnumbered) client too.
    assert one(auth, replace(RADIUS, code=totp(KEY, now), numbered=False), now).accepted
    d = one(auth, replace(RADIUS, code="push", numbered=False), now)
    assert d.reason is Reason.MALFORMED


def test_a_push_the_rule_does_not_allow_counts_no_failure(store: Store, config: Config) -> None:
    from openmfa.node.push import PushService
    from tests.node.test_push import _activated

    setup(store, config, Rule("vpn", channels=("radius",), methods=("push", "totp"),
                              numbered=True))  # fmt: skip
    push = PushService(store, config, Accounts(store, config))
    _activated(push)
    auth = Authenticator(store, POLICY, push=push)
    now = time.time()
    held = replace(RADIUS, code="push", numbered=False)  # a client that holds: no number shown
    for _ in range(POLICY.lockout.threshold + 1):
        d = one(auth, held, now)
        assert (d.accepted, d.reason, d.locked_until) == (False, Reason.METHOD_NOT_ALLOWED, None)
    assert rows(store)[-1] == (
        "rejected",
        "method_not_allowed",
        "method push not allowed by policy rule vpn",
    )
    d = one(auth, replace(RADIUS, code="push"), now)  # a client that shows the number
    assert d.reason is Reason.PENDING and d.pending is not None
    assert one(auth, replace(RADIUS, code=totp(KEY, now)), now).accepted  # not locked
