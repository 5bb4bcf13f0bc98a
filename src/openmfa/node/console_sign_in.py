"""An operator signs in to the administration console: the User Portal's steps
(``node.portal_sign_in.SignInSteps``: first factor, then a push, a passkey or a code), asked
with the console host's key, ending in an *operator token* instead of a portal session.

Rules owned here:
- only a person with a role (``node.roles``) gets an operator token; one without is told
  ``not_an_operator`` after a right password (the console's key is a trusted host's, and a
  wrong password is told ``wrong_password`` first, like anyone's), audited;
- an operator's second factor is strong: a passkey (``hwk``) or a push the phone app approved,
  the number shown to the operator (``swk``). A typed code (TOTP, HOTP, backup or access code)
  signs an operator in only where the policy rule that applies to their sign-in (the portal's
  rules: by group, network) names code kinds among its methods (``--methods totp,...``): the
  default rule, which allows every kind, does not. A code that is not allowed is refused
  ``method_not_allowed`` before it is checked (so it is not used up), audited;
- the first factor alone never signs an operator in (a rule's skip, self-enrolment):
  ``second_factor_required``; neither does a one-time bypass;
- the token is sealed like the portal's (``portal.PortalTokens``, kind ``OPERATOR``), bound to
  the console key it was given to, and lives ``[portal] session_minutes``; what it may do is
  decided again on every call (``roles.Roles.operator``);
- each step is audited ``console.sign_in`` with the client ``KEY/OPERATOR``;
- the first step says ``codes: false`` when no rule lets this operator type a code (the
  console then offers no code box; a code sent anyway is still refused).

The steps are the portal's, under the portal's policy rules (channel ``portal``): a rule that
lets the portal skip the second factor (a trusted network) leaves an operator there refused
``second_factor_required`` rather than signed in with a password; a ``console`` channel of its
own for rules is left for later. The console key is checked by each route just before (its
scope must allow ``console``); the commit thread does not check it again (the steps get no
``key``), as that check asks for ``authenticate``, which a console key may not do.
"""

from __future__ import annotations

import time

import msgspec
from anyio import to_thread

from ..contract import PasskeyChallenge, PortalStep
from ..core.verification import Reason
from ..errors import NotFound
from ..store.changes import AuditEvent
from . import audit
from .audit import NOWHERE, Origin
from .portal import AUTH_TIME, FACTOR, OPERATOR, SESSION, TICKET
from .portal_policy import CODE_KINDS, PORTAL_ITSELF
from .portal_sign_in import SignInSteps

STRONG = frozenset({"hwk", "swk"})
"""The second factors (``portal.FACTOR``) that sign an operator in without a rule's leave."""


class ConsoleSignIn:
    def __init__(self, steps: SignInSteps) -> None:
        self.steps = steps
        self.store = steps.store
        self.tokens = steps.portal
        self.accounts = steps.accounts

    async def first(
        self, user: str, password: str, key: str, request_id: str, origin: Origin = NOWHERE
    ) -> PortalStep:
        """The operator's first factor -> a ticket for the second."""
        step = await self.steps.first(user, password, key, request_id, None, origin)
        if not step.accepted:
            return step
        if step.token:  # the first factor alone: never for an operator
            return await self._refused(user, key, request_id, "second_factor_required", origin)
        if not await to_thread.run_sync(self._role, user):
            return await self._refused(user, key, request_id, "not_an_operator", origin)
        if step.codes and not await to_thread.run_sync(self._codes_allowed, user, origin):
            step = msgspec.structs.replace(step, codes=False)  # the console offers no code box
        return step

    async def second(
        self,
        ticket: str,
        key: str,
        request_id: str,
        *,
        code: str = "",
        method: str = "",
        push_id: str = "",
        wait: float = 0,
        origin: Origin = NOWHERE,
        pin: str = "",
    ) -> PortalStep:
        """A push (opened, then collected) or, where a rule allows it, a code -> the operator
        token; ``pin``: the operator's PIN, where the rule wants one."""
        grant = self.tokens.check(ticket, TICKET, key, time.time(), via=None)
        typed = bool(code) and method != "push" and not push_id
        if typed and not await to_thread.run_sync(self._codes_allowed, grant.user, origin):
            reason = str(Reason.METHOD_NOT_ALLOWED)
            return await self._refused(grant.user, key, request_id, reason, origin)
        step = await self.steps.second(
            ticket,
            key,
            request_id,
            None,
            code=code,
            method=method,
            push_id=push_id,
            wait=wait,
            origin=origin,
            pin=pin,
        )
        return await self._operator(step, key, request_id, origin)

    async def passkey_options(self, ticket: str, key: str, origin: str) -> PasskeyChallenge:
        return await self.steps.passkey_options(ticket, key, origin)

    async def passkey(
        self,
        ticket: str,
        key: str,
        request_id: str,
        challenge: str,
        credential: str,
        origin: Origin = NOWHERE,
    ) -> PortalStep:
        """The browser's answer to a passkey sign-in -> the operator token."""
        step = await self.steps.passkey(ticket, key, request_id, challenge, credential, origin)
        return await self._operator(step, key, request_id, origin)

    async def _operator(
        self, step: PortalStep, key: str, request_id: str, origin: Origin
    ) -> PortalStep:
        """The portal session ``step`` carries, turned into an operator token (or refused)."""
        if not (step.accepted and step.token):
            return step  # pending, or refused (audited by the steps)
        session = self.tokens.check(step.token, SESSION, key, time.time(), via=None)
        user, factor = session.user, session.factor
        if factor not in STRONG and factor != "otp":  # a bypass: no second factor was given
            return await self._refused(user, key, request_id, "second_factor_required", origin)
        role = await to_thread.run_sync(self._role, user)
        if not role:
            return await self._refused(user, key, request_id, "not_an_operator", origin)
        extra = {AUTH_TIME: repr(session.auth_time), FACTOR: factor}
        token, expires = self.tokens.issue(OPERATOR, user, key, time.time(), extra)
        await self._audit(user, key, request_id, "ok", "ok", f"{role}, {factor}", origin)
        return PortalStep(accepted=True, reason="ok", token=token, expires_at=expires)

    async def _refused(
        self, user: str, key: str, request_id: str, reason: str, origin: Origin
    ) -> PortalStep:
        await self._audit(user, key, request_id, "rejected", reason, "", origin)
        return PortalStep(accepted=False, reason=reason)

    async def _audit(
        self,
        user: str,
        key: str,
        request_id: str,
        result: str,
        reason: str,
        detail: str,
        origin: Origin,
    ) -> None:
        event = AuditEvent(
            "console.sign_in",
            result,
            user_name=user,
            client=f"{key}/{user}",
            request_id=request_id,
            reason=reason,
            detail=detail,
            source_enc=origin.sealed(self.store.box, user),
        )
        await to_thread.run_sync(audit.record, self.store, event)

    def _role(self, user: str) -> str:
        try:
            return self.accounts.get_user(user).role
        except NotFound:  # deleted a moment ago
            return ""

    def _codes_allowed(self, user: str, origin: Origin) -> bool:
        """The rule of ``user``'s sign-in names code kinds among its methods."""
        rule = self.steps.rule(user, PORTAL_ITSELF, origin)
        return rule is not None and rule.kinds is not None and bool(rule.kinds & CODE_KINDS)
