"""The User Portal's sign-in, step by step: the first factor gives a ticket, the second (a
code, an approved push, or a passkey) a session token bound to the user. The SDK's portal
routes parse a body, call one method here and answer what it returns.

Rules owned here:
- the first factor is the node's one first-factor rule (``node.first_factor``) with the check
  ``[portal] primary`` names: a locked user's password is not checked, a wrong one counts
  toward the lock, and a locked or refused user is told only ``locked`` or ``wrong_password``;
- with ``[portal] self_enroll`` a user who has no method yet is signed in by the first factor
  alone (audited ``portal.self_enroll``), so they can add their first one;
- a ticket names the kind of the user's default method and the kinds and names of all their
  methods, for the portal to offer first and to say which one it asks for;
- a push is collected only by the portal that opened it, for the ticket's own user, with a
  ticket issued before the push was opened (``TICKET_SKEW``: the farm's clocks), and once
  (``PushRequests.collect``: one conditional update); the session's ``AUTH_TIME`` is when the
  phone approved it;
- a sign-in Entra ID started (``portal.VIA``) stays one: its session token is good only to
  finish it;
- a passkey sign-in is refused while the user is locked, and audited like any second factor;
- what the policy rules say of the sign-in (``node.portal_policy``): the methods offered, a
  trusted network's skip, a method refused, a remembered browser (``node.remembered``: its
  token is looked at only after the password was checked right, and only the second factor is
  remembered).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from anyio import to_thread

from ..contract import MethodName, PasskeyChallenge, PendingPush, PortalStep, PushOutcome
from ..core.policy import Compiled
from ..core.verification import Decision, Reason
from ..errors import InvalidInput, NotFound, OpenMfaError
from ..store.changes import AuditEvent
from ..store.database import Store
from . import audit, pins
from . import policy_enforce as enforce
from .accounts import Accounts
from .audit import NOWHERE, Origin
from .authenticator import Attempt
from .commit_queue import CommitQueue
from .first_factor import FirstFactor, PasswordCheck
from .passkeys import Passkeys
from .portal import AUTH_TIME, FACTOR, SESSION, TICKET, VIA, Grant, PortalTokens
from .portal_policy import (
    CODE_KINDS,
    METHOD_KIND,
    PIN_GIVEN,
    PORTAL_ITSELF,
    PortalPolicy,
    Purpose,
    allows,
)
from .push import PushService
from .push_hub import PushHub
from .push_sign_in import decide_push
from .remembered import RememberedBrowsers
from .remembered_steps import RememberedSteps, Then

TICKET_SKEW = 5.0
"""Seconds a push may seem opened before its ticket was issued (the ticket may come from
another node of the farm than the master the push is opened at: their clocks)."""

WaitOutcome = Callable[[PushService, PushHub, Store, str, float], Awaitable[PushOutcome]]
"""Waits on this (master) node up to some seconds for a push's outcome while it is pending
(``farm.push_relay.wait_outcome``: the farm's, which knows when this node stops leading)."""


class SignInSteps:
    def __init__(
        self,
        store: Store,
        queue: CommitQueue,
        accounts: Accounts,
        portal: PortalTokens,
        push: PushService,
        hub: PushHub,
        passkeys: Passkeys,
        checks: dict[str, PasswordCheck],
        wait_outcome: WaitOutcome,
        policy: PortalPolicy,
        remembered: RememberedBrowsers | None = None,
    ) -> None:
        """``checks``: the node's first-factor checks by name (``local``, ``ldap``,
        ``radius``); the portal's is the one ``[portal] primary`` names, else ``local``."""
        self.store = store
        self.queue = queue
        self.accounts = accounts
        self.portal = portal
        self.push = push
        self.hub = hub
        self.passkeys = passkeys
        self.first_factor = FirstFactor(store, queue)
        self.check = checks.get(portal.primary) or checks["local"]
        self.wait_outcome = wait_outcome
        self.policy = policy
        self.remembered = remembered or RememberedBrowsers(store)
        self.remember = RememberedSteps(store, portal, self.remembered, self.rule)

    async def first(
        self,
        user: str,
        password: str,
        client: str,
        request_id: str,
        key: str | None,
        origin: Origin = NOWHERE,
        purpose: Purpose = PORTAL_ITSELF,
        remembered: str = "",
    ) -> PortalStep:
        """The user's first factor -> a ticket for the second (or, self-enrolling, where a
        policy rule skips the second factor or a remembered browser stands for it, a session
        token at once). ``key``: the portal's API key, checked again on the commit thread;
        ``origin``: the browser's address and name, kept (sealed) with the audit rows;
        ``purpose``: what the sign-in is for; ``remembered``: the token of the browser's
        remember cookie ("" for none)."""
        sealed = origin.sealed(self.store.box, user)
        d = await self.first_factor.check(
            self.check,
            _attempt(user, "", client, request_id, key, origin, False, purpose),
            password,
            AuditEvent(
                "portal.sign_in",
                "ok",
                user_name=user,
                client=client,
                request_id=request_id,
                detail=f"first factor ({self.portal.primary})",
                source_enc=sealed,
            ),
        )
        if d.reason is Reason.LOCKED:
            return PortalStep(accepted=False, reason=str(Reason.LOCKED))
        if not d.accepted:  # an unknown user's password is wrong like anyone's
            return PortalStep(accepted=False, reason=str(Reason.WRONG_PASSWORD))
        if d.reason is Reason.SKIPPED:  # a policy rule (audited with its name): no second
            # factor, so never a fresh one (``AUTH_TIME`` 0): changing methods asks for one.
            extra = {**purpose.extra(), AUTH_TIME: "0"}
            token, expires = self.portal.issue(SESSION, user, client, time.time(), extra)
            return PortalStep(accepted=True, reason="skipped", token=token, expires_at=expires)
        if self.portal.self_enroll and not await to_thread.run_sync(
            self.accounts.list_methods, user
        ):
            # No method yet, and policy lets people add their first one: signed in already.
            token, expires = self.portal.issue(SESSION, user, client, time.time())
            event = AuditEvent(
                "portal.self_enroll",
                "ok",
                user_name=user,
                client=client,
                request_id=request_id,
                source_enc=sealed,
            )
            await to_thread.run_sync(audit.record, self.store, event)
            return PortalStep(accepted=True, reason="ok", token=token, expires_at=expires)
        if remembered:
            said = (client, request_id, sealed)
            at_once = await self.remember.first(user, purpose, origin, remembered, said)
            if at_once is not None:
                return at_once
        methods, rule, codes, offer, pin = await to_thread.run_sync(
            self._allowed, user, purpose, origin.address
        )
        if rule and not methods:
            event = AuditEvent(
                "portal.sign_in",
                "rejected",
                user_name=user,
                client=client,
                request_id=request_id,
                reason=str(Reason.METHOD_NOT_ALLOWED),
                detail=f"none of the person's methods is allowed by policy rule {rule}",
                source_enc=sealed,
            )
            await to_thread.run_sync(audit.record, self.store, event)
            return PortalStep(accepted=False, reason=str(Reason.METHOD_NOT_ALLOWED))
        ticket, expires = self.portal.issue(TICKET, user, client, time.time(), purpose.extra())
        prefer = await to_thread.run_sync(self._preferred_kind, user)
        if prefer and all(m.kind != prefer for m in methods):
            prefer = ""  # the default method is one the rule does not allow here
        return PortalStep(
            accepted=True,
            reason="ok",
            ticket=ticket,
            expires_at=expires,
            prefer=prefer,
            kinds=sorted({m.kind for m in methods}),
            codes=codes,
            pin=pin,
            methods=methods,
            remember_minutes=offer,
        )

    async def second(
        self,
        ticket: str,
        client: str,
        request_id: str,
        key: str | None,
        *,
        code: str = "",
        method: str = "",
        push_id: str = "",
        wait: float = 0,
        origin: Origin = NOWHERE,
        remember: bool = False,
        pin: str = "",
    ) -> PortalStep:
        """The ticket of the first step and a code of the user's -> a session token bound to
        the user. ``method="push"`` (no code) opens a push: ``pending``, with the number to
        show; then ``push_id`` (waiting up to ``wait`` seconds) collects it. ``remember``:
        remember the browser once signed in, where the rule allows it (``node.remembered``);
        ``pin``: the person's PIN, where the rule wants one (``node.pins``)."""
        grant = self.portal.check(ticket, TICKET, client, time.time(), via=None)
        then = Then(remember, origin, request_id)
        if push_id:
            return await self._collect_push(client, grant, push_id, wait, then)
        if method == "push":
            if code:
                raise InvalidInput("send no code with method push (the phone answers instead)")
        elif not code:
            raise InvalidInput("send the code of one of the user's methods, or method push")
        code = "push" if method == "push" else code
        purpose = Purpose.of(grant.extra)
        attempt = _attempt(
            grant.user, code, client, request_id, key, origin, method == "push", purpose
        )
        # At the master, or not_master; a node promoted a moment ago decides again.
        result = await decide_push(
            self.queue, attempt, self.push, here=True, asked=method == "push"
        )
        pinned = isinstance(result, Decision) and result.reason is Reason.PIN_NEEDED
        if pinned:
            # The rule wants the PIN before the code (or the push): checked off the commit
            # thread, then the rest decided (a PIN missing or wrong: ``wrong_pin``, counted).
            typed = replace(attempt, code=pin + ("push" if method == "push" else code))
            result = await decide_push(
                self.queue, await pins.checked(self.store, typed), self.push, here=True
            )
        if isinstance(result, OpenMfaError):
            raise result
        d: Decision = result
        if d.pending is not None:
            pid, number, expires = d.pending
            pending = PendingPush(id=pid, number=number, expires_at=expires)
            return PortalStep(accepted=False, reason="pending", pending=pending)
        if not d.accepted:
            return PortalStep(accepted=False, reason=str(d.reason))
        if d.reason is Reason.BYPASS:
            return self._session(grant, client, "")
        kind = await to_thread.run_sync(self._kind, grant.user, d.method_id)
        return await self.remember.after(
            self._session(grant, client, "otp", kind=kind, pinned=pinned), grant, then
        )

    async def _collect_push(
        self, client: str, grant: Grant, push_id: str, wait: float, then: Then
    ) -> PortalStep:
        """The push this portal opened for this ticket (its user, opened after the ticket was
        issued): a session token once approved, given once — a push already collected, or
        older than the ticket, is no push of this sign-in."""
        outcome = await to_thread.run_sync(self.push.outcome, push_id, client)  # at the master
        if outcome.user != grant.user:
            raise NotFound(f"there is no push request {push_id!r} of this sign-in")
        if outcome.status == "pending" and wait:
            outcome = await self.wait_outcome(self.push, self.hub, self.store, push_id, wait)
        if not outcome.accepted:
            return PortalStep(accepted=False, reason=outcome.status)
        approved = await to_thread.run_sync(self._collect, push_id, grant.issued_at)
        if approved is None:
            raise NotFound(
                f"the push request {push_id!r} is not of this sign-in (older, or taken already)"
            )
        step = self._session(grant, client, "swk", approved, kind="push")
        return await self.remember.after(step, grant, then)

    def _collect(self, push_id: str, ticket_issued: float) -> float | None:
        """``PushRequests.collect`` at the master, for a ticket issued at ``ticket_issued``."""
        self.push.require_master()
        return self.push.requests.collect(push_id, ticket_issued - TICKET_SKEW, time.time())

    async def passkey_options(self, ticket: str, client: str, origin: str) -> PasskeyChallenge:
        """A passkey sign-in begins (the ticket of the first step): the browser's options for
        the page at ``origin``."""
        grant = self.portal.check(ticket, TICKET, client, time.time(), via=None)
        options, challenge, expires = await to_thread.run_sync(
            self.passkeys.authentication, grant.user, client, origin
        )
        return PasskeyChallenge(options=options, challenge=challenge, expires_at=expires)

    async def passkey(
        self,
        ticket: str,
        client: str,
        request_id: str,
        challenge: str,
        credential: str,
        origin: Origin = NOWHERE,
        remember: bool = False,
    ) -> PortalStep:
        """The browser's answer to a passkey sign-in -> a session token bound to the user
        (``remember``: as ``second``'s)."""
        grant = self.portal.check(ticket, TICKET, client, time.time(), via=None)
        if await to_thread.run_sync(self._locked, grant.user):
            return PortalStep(accepted=False, reason=str(Reason.LOCKED))
        rule = await to_thread.run_sync(self.rule, grant.user, Purpose.of(grant.extra), origin)
        if rule is not None and not allows(rule, "passkey"):
            event = AuditEvent(
                "authenticate",
                "rejected",
                user_name=grant.user,
                client=client,
                reason=str(Reason.METHOD_NOT_ALLOWED),
                request_id=request_id,
                detail=enforce.refused(rule, "passkey"),
                source_enc=origin.sealed(self.store.box, grant.user),
            )
            await to_thread.run_sync(audit.record, self.store, event)
            return PortalStep(accepted=False, reason=str(Reason.METHOD_NOT_ALLOWED))
        method_id = await to_thread.run_sync(
            self.passkeys.authenticate, grant.user, client, challenge, credential
        )
        event = AuditEvent(
            "authenticate",
            "accepted" if method_id else "rejected",
            user_name=grant.user,
            client=client,
            method_id=method_id or "",
            reason="ok" if method_id else "wrong_passkey",
            request_id=request_id,
            detail="passkey",
            source_enc=origin.sealed(self.store.box, grant.user),
        )
        await to_thread.run_sync(audit.record, self.store, event)
        if method_id is None:
            return PortalStep(accepted=False, reason="wrong_passkey")
        step = self._session(grant, client, "hwk", kind="passkey")
        return await self.remember.after(step, grant, Then(remember, origin, request_id))

    def _session(
        self,
        ticket: Grant,
        client: str,
        factor: str,
        at: float | None = None,
        *,
        kind: str = "",
        pinned: bool = False,
    ) -> PortalStep:
        """A session token for the ticket's user that says which second factor was given
        (``portal.FACTOR``: what an OpenID Connect ID token's ``amr`` is made from; "" for a
        bypass) and with which kind of method (``METHOD_KIND``), when (``portal.AUTH_TIME``:
        ``at``, else now), what the sign-in was for, and the ticket's ``VIA``."""
        now = time.time()
        extra = {AUTH_TIME: repr(now if at is None else min(at, now))}
        extra.update(Purpose.of(ticket.extra).extra())
        if factor:
            extra[FACTOR] = factor
        if kind:
            extra[METHOD_KIND] = kind
        if pinned:  # the PIN was typed with the code (``PIN_GIVEN``)
            extra[PIN_GIVEN] = "1"
        if ticket.via:
            extra[VIA] = ticket.via
        token, expires = self.portal.issue(SESSION, ticket.user, client, now, extra)
        return PortalStep(accepted=True, reason="ok", token=token, expires_at=expires)

    def _methods(self, user: str) -> list[MethodName]:
        """``user``'s methods, kind and name, oldest first ([] when no such user)."""
        try:
            return [
                MethodName(kind=m.kind, label=m.label) for m in self.accounts.list_methods(user)
            ]
        except NotFound:
            return []

    def rule(self, user: str, purpose: Purpose, origin: Origin) -> Compiled | None:
        """The policy rule of ``user``'s sign-in for ``purpose`` (None: no such user)."""
        try:
            groups = self.accounts.get_user(user).groups
        except NotFound:
            return None
        return self.policy.rule(purpose, origin.address, groups)

    def _allowed(
        self, user: str, purpose: Purpose, address: str
    ) -> tuple[list[MethodName], str, bool, int, bool]:
        """``user``'s methods the policy rule of this sign-in allows, the rule's name (""
        when the person has no method at all: the second step says so), whether a typed
        code may give the second factor (``PortalStep.codes``), the minutes the browser may be
        remembered for (``PortalStep.remember_minutes``), and whether the rule wants a PIN."""
        methods = self._methods(user)
        if not methods:
            return methods, "", True, 0, False
        rule = self.policy.rule(purpose, address, self.accounts.get_user(user).groups)
        allowed = [m for m in methods if allows(rule, m.kind)]
        codes = rule.kinds is None or any(
            m.kind in CODE_KINDS or (m.kind == "push" and not rule.rule.numbered) for m in allowed
        )
        pin = rule.rule.pin == "required"
        return allowed, rule.name, codes, self.remembered.offer(rule), pin

    def _kind(self, user: str, method_id: str | None) -> str:
        """The kind of ``user``'s method ``method_id`` ("" if it is gone)."""
        try:
            methods = self.accounts.list_methods(user)
        except NotFound:
            return ""
        return next((str(m.kind) for m in methods if m.id == method_id), "")

    def _preferred_kind(self, user: str) -> str:
        """The kind of ``user``'s default method ("" when none is chosen, or no such user)."""
        try:
            return self.accounts.default_kind(user)
        except NotFound:
            return ""

    def _locked(self, user: str) -> bool:
        try:
            until = self.accounts.get_user(user).locked_until
        except NotFound:
            return False  # an unknown user is not locked (their passkey is wrong like anyone's)
        return until is not None and until > time.time()


def _attempt(
    user: str,
    code: str,
    client: str,
    rid: str,
    key: str | None,
    origin: Origin,
    push: bool,
    purpose: Purpose,
) -> Attempt:
    return Attempt(
        user,
        code,
        client=client,
        request_id=rid,
        token=key,
        push=push,
        source=origin.address,
        browser=origin.browser,
        system=origin.system,
        channel=purpose.channel,
        channel_client=purpose.app,
        network=origin.address,
        skippable=False,
        no_skip=purpose.no_skip,
    )
