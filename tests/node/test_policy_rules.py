"""Policy rules as configuration (``node.policy_rules``) on both databases: added in order,
moved, removed, the default rule untouchable, each refusal clear, every change audited, and
nothing written before data format 12."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, insert, select

from openmfa.config import Config
from openmfa.core.policy import Context, Rule
from openmfa.errors import Conflict, InvalidInput, NotFound
from openmfa.node.accounts import Accounts
from openmfa.node.groups import Groups
from openmfa.node.policy import verify_policy
from openmfa.node.policy_rules import PolicyRules
from openmfa.store import tables as t
from openmfa.store.database import Store


def names(rules: PolicyRules) -> list[str]:
    return [r.name for r in rules.all()]


def test_rules_are_added_moved_and_removed_in_order(store: Store, config: Config) -> None:
    rules = PolicyRules(store)
    rules.add(Rule("a", channels=("radius",), methods=("totp",)))
    rules.add(Rule("b", networks=("10.0.0.0/8",), second_factor="skip"))
    rules.add(Rule("c", groups=(" admins ",), methods=("push",), numbered=True), position=1)
    assert names(rules) == ["c", "a", "b"]
    assert rules.all()[0].groups == ("admins",)  # a group's name as node.groups spells it
    rules.move("b", 1)
    assert names(rules) == ["b", "c", "a"]
    rules.move("b", 3)
    assert names(rules) == ["c", "a", "b"]
    rules.remove("a")
    assert names(rules) == ["c", "b"]
    with store.read() as conn:
        rows = conn.execute(select(t.audit.c.action, t.audit.c.detail)).all()
    actions = [r.action for r in rows]
    assert actions.count("policy.rule.add") == 3 and actions.count("policy.rule.move") == 2
    assert ("policy.rule.remove", "a") in [tuple(r) for r in rows]
    assert any("c at 1: group=admins -> " in r.detail for r in rows)


def test_refusals_say_what_is_wrong(store: Store) -> None:
    rules = PolicyRules(store)
    rules.add(Rule("a"))
    with pytest.raises(Conflict, match="a rule named 'a' exists already"):
        rules.add(Rule("a", methods=("totp",)))
    with pytest.raises(InvalidInput, match="no second factor from everywhere"):
        rules.add(Rule("open", groups=("contractors",), second_factor="skip"))
    assert names(rules) == ["a"]
    rules.add(Rule("open", groups=("kiosk",), second_factor="skip"), allow_no_mfa=True)
    with store.read() as conn:
        detail = conn.scalar(select(t.audit.c.detail).where(t.audit.c.detail.like("open at%")))
    assert detail is not None and detail.endswith("no-mfa-allowed")
    with pytest.raises(InvalidInput, match="a group's name"):
        rules.add(Rule("g", groups=("a/b",)))
    with pytest.raises(InvalidInput, match="the position must be from 1 to 3"):
        rules.add(Rule("far"), position=4)
    with pytest.raises(InvalidInput, match="the position must be from 1 to 2"):
        rules.move("a", 0)
    with pytest.raises(NotFound, match="no policy rule named 'zz'"):
        rules.remove("zz")
    for call in (lambda: rules.remove("default"), lambda: rules.move("default", 1)):
        with pytest.raises(Conflict, match="the default rule always exists"):
            call()


def test_nothing_is_written_before_data_format_12(store: Store) -> None:
    with store.write() as conn:
        conn.execute(delete(t.meta).where(t.meta.c.key == "data_format"))
        conn.execute(insert(t.meta).values(key="data_format", value="11"))
    rules = PolicyRules(store)
    for call in (
        lambda: rules.add(Rule("a")),
        lambda: rules.move("a", 1),
        lambda: rules.remove("a"),
    ):
        with pytest.raises(Conflict, match=r"policy rules need data format 12.*farm finalize"):
            call()
    assert rules.all() == []


def test_test_explains_with_the_person_s_groups(store: Store, config: Config) -> None:
    accounts = Accounts(store, config)
    accounts.add_user("pia")
    Groups(store, accounts).add("pia", "admins")
    rules = PolicyRules(store, accounts)
    rules.add(Rule("office", channels=("radius",), networks=("10.0.0.0/8",), second_factor="skip"))
    rules.add(Rule("admins", groups=("admins",), methods=("passkey", "push")))
    base = verify_policy(config)
    tested = rules.test("pia", Context("radius", "vpn", "10.1.2.3"), base)
    assert tested.groups == ["admins"] and tested.explanation.rule.name == "office"
    tested = rules.test("pia", Context("radius", "vpn", "192.0.2.1"), base)
    assert tested.explanation.rule.name == "admins"
    with pytest.raises(NotFound):
        rules.test("nobody", Context("radius"), base)
    with pytest.raises(InvalidInput, match="--channel must be one of"):
        rules.test("pia", Context("telnet"), base)
