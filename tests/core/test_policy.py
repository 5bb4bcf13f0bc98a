"""The rule model and its evaluator (``core.policy``): matching on every condition, the first
matching rule wins, the default rule last, and every refusal of a rule that cannot be."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openmfa.core.policy import (
    DEFAULT,
    Context,
    Rule,
    RuleBook,
    address_number,
    check_rule,
)
from openmfa.core.verification import VerifyPolicy
from openmfa.errors import InvalidInput

BASE = VerifyPolicy()
NONE: frozenset[str] = frozenset()


def book(*rules: Rule) -> RuleBook:
    return RuleBook([check_rule(r, allow_no_mfa=True) for r in rules], BASE)


def test_no_rules_the_default_rule_decides_what_a_node_did_before() -> None:
    c = book().match(Context("radius", "vpn", "10.1.2.3"), NONE)
    assert c.default and c.name == DEFAULT and c.kinds is None and not c.rule.skips
    assert c.policy is BASE


def test_the_first_matching_rule_wins_and_empty_conditions_match_everything() -> None:
    b = book(
        Rule(
            "vpn-office",
            channels=("radius",),
            clients=("vpn",),
            networks=("10.0.0.0/8",),
            second_factor="skip",
        ),
        Rule("vpn", channels=("radius",), clients=("vpn",), methods=("push", "totp")),
        Rule("everyone", methods=("totp",)),
    )
    assert b.match(Context("radius", "vpn", "10.1.2.3"), NONE).name == "vpn-office"
    assert b.match(Context("radius", "vpn", "192.0.2.1"), NONE).name == "vpn"
    assert b.match(Context("radius", "wifi", "10.1.2.3"), NONE).name == "everyone"
    assert b.match(Context("sdk", "app", ""), NONE).name == "everyone"
    assert b.match(Context("", "", ""), NONE).name == DEFAULT  # no channel: no rule
    assert b.match(Context("radius", "vpn", "192.0.2.1"), NONE).kinds == {"push", "totp"}


def test_groups_are_any_of_and_read_only_when_a_rule_asks() -> None:
    asked: list[int] = []

    def groups() -> frozenset[str]:
        asked.append(1)
        return frozenset({"staff", "admins"})

    b = book(
        Rule("kiosk", networks=("192.0.2.0/24",)),
        Rule("admins", groups=("admins", "root"), methods=("passkey", "push"), numbered=True),
    )
    assert b.uses_groups
    assert b.match(Context("portal", "", "192.0.2.9"), groups).name == "kiosk"
    assert asked == []  # the first rule matched: the groups were never read
    assert b.match(Context("portal", "", "198.51.100.1"), groups).name == "admins"
    assert asked == [1]
    assert b.match(Context("portal"), frozenset({"staff"})).name == DEFAULT
    assert not book(Rule("x", methods=("totp",))).uses_groups


def test_networks_of_both_families_and_the_calling_station() -> None:
    b = book(
        Rule(
            "station", channels=("radius",), networks=("172.16.0.0/12",), source="calling-station"
        ),
        Rule("v6", networks=("2001:db8::/32",)),
        Rule("v4", networks=("10.0.0.0/8", "192.0.2.7")),
    )
    assert b.match(Context("radius", "vpn", "203.0.113.1", "172.16.5.5"), NONE).name == "station"
    assert b.match(Context("radius", "vpn", "10.9.9.9", "00-11-22-33-44-55"), NONE).name == "v4"
    assert b.match(Context("sdk", "", "2001:db8::1"), NONE).name == "v6"
    assert b.match(Context("sdk", "", "::ffff:10.1.1.1"), NONE).name == "v4"  # mapped
    assert b.match(Context("sdk", "", "192.0.2.7"), NONE).name == "v4"
    assert b.match(Context("sdk", "", "192.0.2.8"), NONE).name == DEFAULT
    # An address that is not one, or none at all, never matches a network.
    for said in ("", "not-an-address", "10.1.2", "::ffff:zz", "10.0.0.1/8"):
        assert b.match(Context("sdk", "", said), NONE).name == DEFAULT, said
    # IPv4's numbers and IPv6's never meet: ::a01:203 is not 10.1.2.3.
    assert address_number("::a01:203") != address_number("10.1.2.3")


def test_a_rule_s_lockout_threshold_replaces_the_policy_s() -> None:
    c = book(Rule("strict", lockout_threshold=3)).match(Context("sdk"), NONE)
    assert c.policy.lockout.threshold == 3
    assert c.policy.lockout.minutes == BASE.lockout.minutes
    assert c.policy.totp_drift_steps == BASE.totp_drift_steps


def test_explain_says_which_conditions_matched() -> None:
    b = book(
        Rule("office", channels=("radius",), networks=("10.0.0.0/8",), second_factor="skip"),
        Rule("admins", groups=("admins",), methods=("push",)),
    )
    e = b.explain(Context("radius", "vpn", "192.0.2.1"), frozenset({"admins"}))
    assert e.rule.name == "admins"
    (_, conds), (_, conds2) = e.checked
    assert [(c.what, c.matched) for c in conds] == [("channel", True), ("source", False)]
    assert [(c.what, c.matched, c.why) for c in conds2] == [("group", True, "admins")]
    e = b.explain(Context("sdk", "app", ""), NONE)
    assert e.rule.name == DEFAULT and e.checked[-1][0].name == DEFAULT


def test_a_rule_round_trips_through_its_record() -> None:
    r = check_rule(
        Rule(
            "r1",
            channels=("RADIUS",),
            clients=("vpn",),
            groups=("a",),
            networks=("10.1.2.3/8",),
            methods=("TOTP", "backup"),
            lockout_threshold=4,
            remember_minutes=30,
            pin="required",
        ),
    )
    assert r.channels == ("radius",) and r.networks == ("10.0.0.0/8",)
    assert r.methods == ("totp", "backup")
    assert Rule.from_payload(r.payload()) == r
    assert "client=vpn" in r.describe() and "lockout-threshold=4" in r.describe()


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        (Rule(""), "a rule's name is 1 to 64"),
        (Rule("has space"), "a rule's name is 1 to 64"),
        (Rule("x" * 65), "a rule's name is 1 to 64"),
        (Rule(DEFAULT), "cannot be added or changed"),
        (Rule("r", channels=("telnet",)), "'telnet' is not a channel"),
        (Rule("r", clients=("vpn",)), "--client names a client of a channel"),
        (Rule("r", channels=("radius", "portal"), clients=("vpn",)), "--client names a client"),
        (Rule("r", channels=("radius",), clients=("",)), "a client's name is 1 to 255"),
        (Rule("r", networks=("10.0.0.300/8",)), "is not a network"),
        (Rule("r", networks=("10.0.0.0/8",), source="nas"), "--source-from must be one of"),
        (Rule("r", networks=("10.0.0.0/8",), source="calling-station"), "with --channel radius"),
        (Rule("r", methods=("sms",)), "'sms' is not a method"),
        (Rule("r", second_factor="maybe"), "--second-factor must be one of"),
        (Rule("r", pin="sometimes"), "--pin must be one of"),
        (Rule("r", methods=("totp",), numbered=True), "allow push in --methods too"),
        (Rule("r", lockout_threshold=0), "--lockout-threshold must be from 1"),
        (Rule("r", remember_minutes=-1), "--remember-minutes must be from 0"),
        (Rule("r", second_factor="skip"), "no second factor from everywhere"),
        (Rule("r", groups=("g",), second_factor="skip"), "lets group g in with no second"),
    ],
)
def test_refusals(rule: Rule, said: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_rule(rule)
    assert said in caught.value.message


def test_no_second_factor_from_everywhere_only_when_said() -> None:
    r = check_rule(Rule("r", groups=("g",), second_factor="skip"), allow_no_mfa=True)
    assert r.skips and not r.networks
    assert check_rule(Rule("t", networks=("10.0.0.0/8",), second_factor="skip")).skips


_NETS = ("10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24", "2001:db8::/32", "203.0.113.7/32")
_ADDRS = ("", "10.1.2.3", "10.9.9.9", "192.0.2.1", "2001:db8::5", "203.0.113.7", "x")


@settings(max_examples=200, deadline=None)
@given(
    rules=st.lists(
        st.builds(
            lambda i, ch, cl, gr, nets, station: Rule(
                f"r{i}",
                channels=ch,
                clients=cl,
                groups=gr,
                networks=nets,
                source="calling-station" if station and nets else "address",
                methods=("totp",),
            ),
            st.integers(0, 10**6),
            st.lists(st.sampled_from(("sdk", "radius", "portal")), max_size=2, unique=True).map(
                tuple
            ),
            st.lists(st.sampled_from(("vpn", "app")), max_size=1).map(tuple),
            st.lists(st.sampled_from(("admins", "staff")), max_size=1).map(tuple),
            st.lists(st.sampled_from(_NETS), max_size=2, unique=True).map(tuple),
            st.booleans(),
        ),
        max_size=8,
        unique_by=lambda r: r.name,
    ),
    requests=st.lists(
        st.tuples(
            st.sampled_from(("sdk", "radius", "portal")),
            st.sampled_from(("", "vpn", "app")),
            st.sampled_from(_ADDRS),
            st.sampled_from(_ADDRS),
            st.sampled_from((frozenset(), frozenset({"admins"}), frozenset({"staff"}))),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_the_fast_evaluation_decides_as_the_explanation_says(
    rules: list[Rule], requests: list[tuple[str, str, str, str, frozenset[str]]]
) -> None:
    """``evaluate`` (rules filtered once per address, then groups and Calling-Station-Id) picks
    the rule ``explain`` (every condition of every rule in order) does, asked repeatedly."""
    b = RuleBook(rules, BASE)
    for channel, client, address, station, groups in requests * 2:  # the second time: cached
        ctx = Context(channel, client, address, station)
        assert b.match(ctx, groups).rule == b.explain(ctx, groups).rule, ctx
