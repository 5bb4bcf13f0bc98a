"""The sign-in's side of remembered browsers (``node.remembered`` owns the rules): at the first
step, after the password was checked right, a remembered browser's session at once; after a
second factor the person asked to be remembered with, the browser's token.

Rules owned here:
- a session a remembered browser gets says what was remembered, not more: the ``amr`` value
  (``portal.FACTOR``), the method's kind (``METHOD_KIND``) and the ``AUTH_TIME`` of the second
  factor given when the browser was remembered, and what this sign-in is for;
- such a sign-in is audited ``portal.sign_in`` ``ok``, reason ``remembered``, detail ``second
  factor remembered by policy rule NAME`` (this sign-in's rule);
- a browser is remembered only after a second factor (a bypass has none), never for a sign-in
  Entra ID started, and only where this sign-in's rule allows it now; off the master (or at a
  conflict) the sign-in stands without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from anyio import to_thread

from ..contract import PortalStep
from ..core.policy import Compiled
from ..errors import Conflict, NotMaster
from ..store.changes import AuditEvent
from ..store.database import Store
from . import audit
from .audit import Origin
from .portal import AUTH_TIME, FACTOR, SESSION, Grant, PortalTokens
from .portal_policy import METHOD_KIND, Purpose
from .remembered import RememberedBrowsers

RuleOf = Callable[[str, Purpose, Origin], "Compiled | None"]
"""The policy rule of a person's sign-in for a purpose from an origin (None: no such person)."""


class Then:
    """What a second step asks for after it succeeds: to remember the browser (from where, in
    which request)."""

    __slots__ = ("origin", "remember", "rid")

    def __init__(self, remember: bool, origin: Origin, rid: str) -> None:
        self.remember, self.origin, self.rid = remember, origin, rid


class RememberedSteps:
    def __init__(
        self, store: Store, portal: PortalTokens, remembered: RememberedBrowsers, rule_of: RuleOf
    ) -> None:
        self.store = store
        self.portal = portal
        self.remembered = remembered
        self.rule_of = rule_of

    async def first(
        self,
        user: str,
        purpose: Purpose,
        origin: Origin,
        token: str,
        said: tuple[str, str, str],
    ) -> PortalStep | None:
        """After ``user``'s password was checked right: a session at once when the browser's
        ``token`` stands for the second factor of this sign-in (else None). ``said``: the
        audit's client, request id and sealed origin."""
        client, rid, sealed = said

        def check() -> tuple[str, float]:
            rule = self.rule_of(user, purpose, origin)
            hit = None if rule is None else self.remembered.check(token, user, rule, time.time())
            if hit is None:
                return "", 0.0
            extra = {AUTH_TIME: repr(hit.auth_time), **purpose.extra()}
            if hit.factor:
                extra[FACTOR] = hit.factor
            if hit.kind:
                extra[METHOD_KIND] = hit.kind
            event = AuditEvent(
                "portal.sign_in",
                "ok",
                user_name=user,
                client=client,
                request_id=rid,
                reason="remembered",
                detail=f"second factor remembered by policy rule {hit.rule}",
                source_enc=sealed,
            )
            audit.record(self.store, event)
            return self.portal.issue(SESSION, user, client, time.time(), extra)

        session, expires = await to_thread.run_sync(check)
        if not session:
            return None
        return PortalStep(accepted=True, reason="remembered", token=session, expires_at=expires)

    async def after(self, step: PortalStep, ticket: Grant, then: Then) -> PortalStep:
        """The session ``step`` of ``ticket``'s sign-in, with a remembered browser's token when
        the person asked and the rule allows it (see the module's rules)."""
        if not then.remember or ticket.via:
            return step
        session = self.portal.check(step.token, SESSION, ticket.client, time.time(), via=None)
        extra = session.extra or {}
        factor, kind = extra.get(FACTOR, ""), extra.get(METHOD_KIND, "")
        if not factor:
            return step
        second = (factor, kind, session.auth_time)

        def remember() -> tuple[str, int]:
            rule = self.rule_of(ticket.user, Purpose.of(ticket.extra), then.origin)
            if rule is None or not self.remembered.offer(rule):
                return "", 0
            return self.remembered.add(
                ticket.user,
                rule,
                second,
                then.origin,
                time.time(),
                client=ticket.client,
                rid=then.rid,
            )

        try:
            token, minutes = await to_thread.run_sync(remember)
        except (NotMaster, Conflict):
            return step
        if token:
            step.remember_token, step.remember_minutes = token, minutes
        return step
