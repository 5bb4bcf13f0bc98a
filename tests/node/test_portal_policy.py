"""Policy rules at the User Portal (``node.portal_policy``, ``node.portal_sign_in``) against a
real data file and commit queue, on both databases: the methods a rule allows are the ones
offered, a method it does not allow is refused ``method_not_allowed`` (a code and a passkey),
a trusted network's skip signs a portal or forward-auth sign-in in with the password alone but
never an OpenID Connect one, what the sign-in is for travels in the ticket and the session
token, and an application's code needs a second factor its rule allows (step-up)."""

from __future__ import annotations

import time

import pytest

from openmfa.config import Config
from openmfa.core.policy import Rule
from openmfa.errors import AccessDenied, InvalidInput, Reauthenticate
from openmfa.node import audit
from openmfa.node.accounts import Accounts
from openmfa.node.audit import Origin
from openmfa.node.groups import Groups
from openmfa.node.oidc_codes import OidcCodes
from openmfa.node.oidc_keys import OidcKeys
from openmfa.node.pins import Pins
from openmfa.node.policy_rules import PolicyRules
from openmfa.node.portal import SESSION, TICKET
from openmfa.node.portal_policy import METHOD_KIND, Purpose
from openmfa.node.portal_sign_in import SignInSteps
from openmfa.store.database import Store
from tests.node.test_portal_sign_in import PASSWORD, code_now, run, with_totp

INSIDE = Origin("10.1.2.3", "Firefox", "Linux")
OUTSIDE = Origin("198.51.100.7", "Firefox", "Linux")


def test_purpose_is_read_from_the_header_value_and_refused_when_malformed() -> None:
    assert Purpose.parse("") == Purpose() == Purpose.parse("portal")
    assert Purpose.parse("forward-auth") == Purpose("forward-auth")
    assert Purpose.parse("oidc grafana") == Purpose("oidc", "grafana")
    change = Purpose.parse("portal-change")
    assert change == Purpose(change=True) and change.no_skip and change.extra() == {}
    assert Purpose.of(Purpose("oidc", "grafana").extra()) == Purpose("oidc", "grafana")
    assert Purpose.of(None) == Purpose()
    for bad in ("oidc", "oidc ", "radius", "oidc a b", "oidc " + "x" * 65, "sdk"):
        with pytest.raises(InvalidInput, match="X-OpenMFA-Sign-In-For"):
            Purpose.parse(bad)


def test_an_admin_is_offered_only_what_the_rule_allows_and_a_code_is_refused(
    store: Store, config: Config
) -> None:
    accounts = with_totp(store, config, "ada")
    accounts.enroll("ada", "backup-codes")
    Groups(store, accounts).add("ada", "admins")
    PolicyRules(store).add(Rule("admins-strong", groups=("admins",), methods=("passkey", "push")))
    PolicyRules(store).add(Rule("app-codes", channels=("oidc",), clients=("wiki",)), position=1)

    # A person the rule leaves no method at all: told so after the password, and audited.
    async def scenario(s: SignInSteps) -> list[str]:
        portal = await s.first("ada", PASSWORD, "portal-key", "r1", None, OUTSIDE)
        assert portal.accepted is False and portal.reason == "method_not_allowed"
        wiki = await s.first(
            "ada", PASSWORD, "portal-key", "r2", None, OUTSIDE, Purpose("oidc", "wiki")
        )
        assert wiki.accepted and wiki.kinds == ["backup-codes", "totp"]
        return [portal.reason]

    run(store, config, scenario)
    found = [(e.action, e.result, e.reason, e.detail) for e in audit.query(store, user="ada")]
    assert (
        "portal.sign_in",
        "rejected",
        "method_not_allowed",
        "none of the person's methods is allowed by policy rule admins-strong",
    ) in found


def test_a_code_of_a_method_the_rule_excludes_is_refused_and_the_kind_is_in_the_session(
    store: Store, config: Config
) -> None:
    accounts = with_totp(store, config, "bo")
    Groups(store, accounts).add("bo", "staff")
    PolicyRules(store).add(Rule("staff-apps", groups=("staff",), methods=("totp",)))
    codes = accounts.enroll("bo", "backup-codes").backup_codes or []

    async def scenario(s: SignInSteps) -> tuple[str, str, dict[str, str]]:
        step = await s.first("bo", PASSWORD, "portal-key", "r1", None, OUTSIDE)
        assert step.accepted and step.kinds == ["totp"] and step.ticket
        backup = await s.second(step.ticket, "portal-key", "r2", None, code=codes[0])
        right = await s.second(step.ticket, "portal-key", "r3", None, code=code_now())
        assert right.accepted and right.token
        grant = s.portal.check(right.token, SESSION, "portal-key", time.time())
        return backup.reason, right.reason, grant.extra or {}

    backup, right, extra = run(store, config, scenario)
    assert (backup, right) == ("method_not_allowed", "ok")
    assert extra[METHOD_KIND] == "totp"
    details = [e.detail for e in audit.query(store, user="bo", actions=("authenticate",))]
    assert "method backup-codes not allowed by policy rule staff-apps" in details


def test_a_passkey_the_rule_excludes_is_refused_before_it_is_checked(
    store: Store, config: Config
) -> None:
    with_totp(store, config, "cy")
    PolicyRules(store).add(Rule("codes-only", channels=("portal",), methods=("totp",)))

    async def scenario(s: SignInSteps) -> str:
        step = await s.first("cy", PASSWORD, "portal-key", "r1", None, OUTSIDE)
        refused = await s.passkey(step.ticket, "portal-key", "r2", "not-checked", "{}", OUTSIDE)
        return refused.reason

    assert run(store, config, scenario) == "method_not_allowed"
    events = audit.query(store, user="cy", actions=("authenticate",))
    assert [(e.result, e.detail) for e in events] == [
        ("rejected", "method passkey not allowed by policy rule codes-only")
    ]


def test_a_trusted_network_skips_the_second_factor_for_the_portal_and_forward_auth_only(
    store: Store, config: Config
) -> None:
    with_totp(store, config, "di")
    PolicyRules(store).add(Rule("office", networks=("10.0.0.0/8",), second_factor="skip"))

    async def scenario(s: SignInSteps) -> list[tuple[bool, str, bool]]:
        seen = []
        for origin, purpose in (
            (INSIDE, Purpose()),
            (INSIDE, Purpose("forward-auth")),
            (INSIDE, Purpose("oidc", "wiki")),
            (INSIDE, Purpose(change=True)),  # a re-authentication before a change
            (OUTSIDE, Purpose()),
        ):
            step = await s.first("di", PASSWORD, "portal-key", "r", None, origin, purpose)
            seen.append((step.accepted, step.reason, bool(step.token)))
            if step.token:
                grant = s.portal.check(step.token, SESSION, "portal-key", time.time())
                assert Purpose.of(grant.extra) == purpose and grant.factor == ""
                with pytest.raises(Reauthenticate):  # no second factor: never a fresh one
                    grant.require_fresh(15, time.time())
            else:
                grant = s.portal.check(step.ticket, TICKET, "portal-key", time.time())
                assert Purpose.of(grant.extra) == Purpose(purpose.channel, purpose.app)
        wrong = await s.first("di", "wrong", "portal-key", "r", None, INSIDE)
        seen.append((wrong.accepted, wrong.reason, bool(wrong.token)))
        return seen

    assert run(store, config, scenario) == [
        (True, "skipped", True),
        (True, "skipped", True),
        (True, "ok", False),  # an application's ID token always vouches for a second factor
        (True, "ok", False),  # a change of methods needs a second factor, office or not
        (True, "ok", False),
        (False, "wrong_password", False),
    ]
    details = [e.detail for e in audit.query(store, user="di", actions=("authenticate",))]
    assert details.count("second factor skipped by policy rule office") == 2


def test_an_applications_code_needs_a_second_factor_its_rule_allows(
    store: Store, config: Config
) -> None:
    """A session signed in at the portal with a code gives the ``vault`` application (whose
    rule wants a push) no code: the person signs in again for it."""
    with_totp(store, config, "ed")
    PolicyRules(store).add(
        Rule("vault-push", channels=("oidc",), clients=("vault",), methods=("push",))
    )
    PolicyRules(store).add(
        Rule("pinapp-pin", channels=("oidc",), clients=("pinapp",), pin="required")
    )
    codes = OidcCodes(store, config, Accounts(store, config), OidcKeys(store, config))

    async def scenario(s: SignInSteps) -> str:
        step = await s.first("ed", PASSWORD, "portal-key", "r1", None, OUTSIDE)
        done = await s.second(step.ticket, "portal-key", "r2", None, code=code_now())
        grant = s.portal.check(done.token, SESSION, "portal-key", time.time())
        with pytest.raises(AccessDenied, match="policy rule vault-push"):
            codes._step_up(grant, "vault", "")
        codes._step_up(grant, "wiki", "")  # another application's default rule: any method
        with pytest.raises(AccessDenied, match="policy rule pinapp-pin"):
            codes._step_up(grant, "pinapp", "")  # its rule wants the PIN this sign-in never typed
        return done.reason

    assert run(store, config, scenario) == "ok"


def test_a_pin_rule_asks_the_portal_for_the_pin_before_the_code(
    store: Store, config: Config
) -> None:
    accounts = with_totp(store, config, "fay")
    Pins(store, accounts).set("fay", "4711")
    PolicyRules(store).add(Rule("pin-portal", channels=("portal",), pin="required"))

    async def scenario(s: SignInSteps) -> list[str]:
        step = await s.first("fay", PASSWORD, "portal-key", "r1", None, OUTSIDE)
        assert step.accepted and step.pin
        seen = []
        for pin in ("", "1234"):  # none, or a wrong one: refused, no code looked at
            d = await s.second(step.ticket, "portal-key", "r2", None, code=code_now(), pin=pin)
            seen.append(d.reason)
        right = await s.second(step.ticket, "portal-key", "r3", None, code=code_now(), pin="4711")
        seen.append(right.reason)
        other = await s.first(
            "fay", PASSWORD, "portal-key", "r4", None, OUTSIDE, Purpose("oidc", "x")
        )
        assert not other.pin  # another channel's rule (the default) wants none
        return seen

    assert run(store, config, scenario) == ["wrong_pin", "wrong_pin", "ok"]
