"""What the policy rules say of a sign-in at the User Portal: for the portal itself, for a site
behind forward-auth, or for an OpenID Connect application (``core.policy``'s channels
``portal``, ``forward-auth``, ``oidc`` with the client's name), from the address the portal's
trusted proxies report.

Rules owned here:
- the portal says what a sign-in is for in its first step (``sdk.headers.FOR_HEADER``); the
  ticket and the session token carry it (``CHANNEL``, ``APP``), so the second step, a passkey
  and a later application's code are judged under the same rule's channel and client;
- the methods offered after the first factor are the ones the rule allows; a passkey or a code
  of another kind is refused ``method_not_allowed`` (audited with the rule's name);
- a rule's ``skip`` (a trusted network) signs a portal or forward-auth sign-in in with the first
  factor alone; never an OpenID Connect one: an application's ID token always vouches for a
  second factor (``node.oidc_tokens``), and an Entra ID sign-in is never skipped;
- a session signed in for something else (the portal, another application, a site behind
  forward-auth) gives an application a code, or a site behind forward-auth its cookie, only if
  its sign-in gives what that purpose's rule asks of a second factor (``satisfies``: a method
  kind it allows, ``METHOD_KIND``; the PIN it wants, ``PIN_GIVEN``; a numbered push where it
  wants one; nothing, where the rule skips the second factor there and the purpose takes a
  skip), the rule evaluated from the browser's address as the portal reports it; otherwise the
  person signs in again for it (step-up, ``PortalPolicy.step_up``: the one check, for both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.policy import Compiled, RuleBook
from ..core.verification import VerifyPolicy
from ..errors import InvalidInput
from ..store.database import Store
from .policy_rules import stored_rules

if TYPE_CHECKING:
    from .portal import Grant

CHANNEL, APP, METHOD_KIND, PIN_GIVEN = "ch", "app", "mk", "pn"
"""A ticket's and a session token's extras: the channel and client the sign-in is for, the
kind of the method its second factor was given with, and that the person's PIN was typed."""
PORTAL, FORWARD_AUTH, OIDC, PORTAL_CHANGE = "portal", "forward-auth", "oidc", "portal-change"
CODE_KINDS = frozenset(["totp", "hotp", "backup-codes", "access-code"])
"""The kinds of method a typed code comes from (besides the mobile app's offline code)."""


@dataclass(frozen=True, slots=True)
class Purpose:
    """What a portal sign-in is for, as policy rules name it."""

    channel: str = PORTAL
    app: str = ""
    """The OpenID Connect client's name (channel ``oidc``)."""
    change: bool = False
    """A re-authentication before the person changes their methods (``portal-change``): the
    portal's rule, but never its ``skip`` — a change needs a second factor."""

    @property
    def no_skip(self) -> bool:
        """No rule's ``skip`` applies (an application's ID token vouches for a second factor;
        a change of methods needs one)."""
        return self.channel == OIDC or self.change

    @staticmethod
    def parse(said: str) -> Purpose:
        """``FOR_HEADER``'s value: ``portal`` or absent, ``portal-change``, ``forward-auth``,
        ``oidc NAME``."""
        if not said or said == PORTAL:
            return Purpose()
        if said == PORTAL_CHANGE:
            return Purpose(change=True)
        if said == FORWARD_AUTH:
            return Purpose(FORWARD_AUTH)
        channel, _, app = said.partition(" ")
        if channel == OIDC and app and len(app) <= 64 and app.isprintable() and " " not in app:
            return Purpose(OIDC, app)
        raise InvalidInput(
            "X-OpenMFA-Sign-In-For must be 'portal', 'portal-change', 'forward-auth' or "
            "'oidc CLIENT-NAME'"
        )

    def extra(self) -> dict[str, str]:
        """The ticket's extras that carry it (none for the portal's own sign-in)."""
        if self.channel == PORTAL:
            return {}
        return {CHANNEL: self.channel, APP: self.app} if self.app else {CHANNEL: self.channel}

    @staticmethod
    def of(extra: dict[str, str] | None) -> Purpose:
        """What a ticket or session token was issued for (a token of an earlier release: the
        portal's own sign-in)."""
        x = extra or {}
        return Purpose(x.get(CHANNEL, PORTAL), x.get(APP, ""))


PORTAL_ITSELF = Purpose()
"""A sign-in for the portal itself (no header said otherwise)."""


class PortalPolicy:
    """The rule that applies to a portal sign-in, read when asked (a sign-in's steps are not
    the hot path: the rules are compiled from the store each time, so a rule added a moment
    ago on the master applies here once replicated)."""

    def __init__(self, store: Store, base: VerifyPolicy) -> None:
        self.store = store
        self.base = base

    def rule(self, purpose: Purpose, address: str, groups: list[str]) -> Compiled:
        with self.store.read() as conn:
            book = RuleBook(stored_rules(conn), self.base)
        return book.evaluate(purpose.channel, purpose.app, address, "", frozenset(groups))

    def step_up(
        self, session: Grant, purpose: Purpose, address: str, groups: list[str]
    ) -> Compiled | None:
        """The rule of ``purpose`` (from ``address``, for a person in ``groups``) that
        ``session``'s sign-in, made for something else, does not satisfy: the person signs in
        again for ``purpose``. None: the session stands (or was signed in for it)."""
        if Purpose.of(session.extra) == purpose:
            return None  # signed in for this very purpose: under its rule
        rule = self.rule(purpose, address, groups)
        if rule.rule.skips and not purpose.no_skip:
            return None  # a sign-in for it would need the password alone: every session gave it
        return None if satisfies(rule, session.extra, session.factor) else rule


def satisfies(rule: Compiled, extra: dict[str, str] | None, factor: str) -> bool:
    """A sign-in whose session token carries ``extra`` and the second factor ``factor`` (its
    ``amr`` value) gives the second factor ``rule`` asks for: of a kind it allows (none, for a
    bypass or a skip: only where the rule names no kinds, as a fresh sign-in's bypass would
    do), after the PIN it wants, a numbered push where it wants one (the mobile app's offline
    code is a push method's ``otp``, no push: an approval is ``swk``). An OpenID Connect code
    needs a second factor besides (``oidc_tokens.second_factor``)."""
    x = extra or {}
    kind = x.get(METHOD_KIND, "")
    return (
        allows(rule, kind)
        and not (rule.rule.pin == "required" and x.get(PIN_GIVEN) != "1")
        and not (rule.rule.numbered and kind == "push" and factor != "swk")
    )


def allows(rule: Compiled, kind: str) -> bool:
    """The rule lets a method of ``kind`` give the second factor."""
    return rule.kinds is None or kind in rule.kinds
