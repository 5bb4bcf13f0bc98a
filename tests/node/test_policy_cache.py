"""The authenticator's compiled rules (``node.policy_rules.RuleCache``): compiled once, kept
while other configuration changes, rebuilt when a ``policy.*`` record is applied; the person's
groups are read with the user only while a rule asks for them."""

from __future__ import annotations

from openmfa.config import Config
from openmfa.core.policy import Rule
from openmfa.core.verification import Decision, VerifyPolicy
from openmfa.node.accounts import Accounts
from openmfa.node.authenticator import Attempt, Authenticator
from openmfa.node.groups import Groups
from openmfa.node.policy_rules import PolicyRules
from openmfa.store.database import Store


def run(auth: Authenticator) -> None:
    (d,) = auth.run([Attempt("alice", "000000")])
    assert isinstance(d, Decision)


def test_rules_compile_once_per_generation_that_changes_them(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("alice")
    auth = Authenticator(store, VerifyPolicy())
    run(auth)
    first = auth.rules.book
    assert first.rules == [] and not auth.state.with_groups
    accounts.add_user("bob")  # another change: the rules stay compiled
    run(auth)
    assert auth.rules.book is first
    rules = PolicyRules(store)
    rules.add(Rule("admins", groups=("admins",), methods=("push",)))
    run(auth)
    second = auth.rules.book
    assert second is not first and [c.name for c in second.rules] == ["admins"]
    assert auth.state.with_groups  # a rule asks for groups: they are read with the user
    Groups(store, accounts).add("alice", "admins")
    run(auth)
    assert auth.rules.book is second
    cached = auth.state.user(None, "alice")  # in the cache: no query
    assert cached is not None and cached.groups == {"admins"}
    rules.remove("admins")
    run(auth)
    assert auth.rules.book.rules == [] and not auth.state.with_groups
