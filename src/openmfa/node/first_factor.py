"""The first factor (a password) of every channel, in one place: the User Portal's sign-in
(``[portal] primary``) and RADIUS clients with ``--primary local|ldap|radius`` (challenge,
password+code in one field, or a push after the password).

Invariants owned here:
- a locked user's password is not checked at all (a lock stops password guessing too, and a
  directory or upstream server behind the node never sees the guesses);
- a wrong password counts one failure toward the user's lockout (``[policy]
  lockout_threshold``), exactly as a wrong code does, whatever channel it came through;
- every check is audited with the channel that asked (its own event, and the failure's
  ``authenticate`` row, reason ``wrong_password``).

Both questions to the node go through the commit queue: they are decided in order with the
channel's codes, and read the authenticator's cached user and state (``node.auth_state``), so
asking costs no database read of its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Protocol

from ..core.verification import Decision, Reason
from ..errors import OpenMfaError
from ..store.changes import AuditEvent
from ..store.database import Store
from . import audit
from .authenticator import Attempt
from .commit_queue import CommitQueue

OK = Decision(True, Reason.OK)


class PasswordCheck(Protocol):
    """A first-factor backend (``radius.primary``): True for the right password; raises
    ``PrimaryUnavailable`` when it cannot tell. An unknown user's password costs the same time
    as a known one's and is wrong."""

    async def check(self, user: str, password: str) -> bool: ...


class FirstFactor:
    def __init__(self, store: Store, queue: CommitQueue) -> None:
        self.store = store
        self.queue = queue

    async def check(
        self,
        backend: PasswordCheck,
        attempt: Attempt,
        password: str,
        checked: AuditEvent,
    ) -> Decision:
        """``attempt``'s user's ``password`` (``attempt`` names the user, the channel, its
        request id and API key; its code is not looked at): ``OK`` (go on to the second
        factor), accepted ``skipped`` (a policy rule skips the second factor: the sign-in is
        done), ``locked`` (the password was not checked), or a refusal — ``wrong_password``,
        or the reason the user cannot sign in (unknown, disabled), which a channel answers as
        a wrong password. ``checked`` is the channel's audit event for a right password; a
        wrong one is recorded as it, rejected. A backend that cannot tell raises
        ``PrimaryUnavailable`` (nothing counted); so does a refused API key (its error)."""
        d, _ = await self.check_any(backend, attempt, [password], checked)
        return d

    async def check_any(
        self,
        backend: PasswordCheck,
        attempt: Attempt,
        passwords: list[str],
        checked: AuditEvent,
    ) -> tuple[Decision, int]:
        """As ``check``, for a field that can be read as more than one password (password and
        code in one field, for a user whose codes differ in length): tried in order until one
        is right; its index (-1 for none). One failure is counted when none is right, and
        with none to try at all (no password in the field)."""
        if not passwords:
            return await self.failed(attempt), -1
        before = await self._decide(replace(attempt, code="", before_first_factor=True))
        if before.reason is Reason.LOCKED:
            return before, -1
        right = -1
        for i, password in enumerate(passwords):
            if await backend.check(attempt.user, password):
                right = i
                break
        if before.reason in (Reason.UNKNOWN_USER, Reason.DISABLED):
            # Checked all the same (the same work and time), never right: a person the node
            # does not know, or disabled, cannot have a password guessed here (a directory
            # behind the node would say yes), and no failure is counted for nobody.
            event = replace(checked, result="rejected", reason=str(before.reason))
            await asyncio.to_thread(audit.record, self.store, event)
            return before, -1
        ok = right >= 0
        event = checked if ok else replace(checked, result="rejected", reason="wrong_password")
        await asyncio.to_thread(audit.record, self.store, event)
        if ok and before.reason is Reason.SKIPPED:
            # A policy rule skips the second factor (a trusted network): asked again now that
            # the password is right, so the acceptance is decided, stored and audited there.
            skipped = await self._decide(
                replace(attempt, code="", push=False, first_factor_passed=True)
            )
            return (skipped if skipped.accepted else OK), right
        return (OK, right) if ok else (await self.failed(attempt), -1)

    async def failed(self, attempt: Attempt) -> Decision:
        """A wrong first factor the channel saw without asking a backend (password+code in one
        field that holds no code): one failure toward the lock, unless the user is locked."""
        return await self._decide(
            replace(attempt, code="", push=False, first_factor_failed=True, neutral=False)
        )

    async def _decide(self, attempt: Attempt) -> Decision:
        result = await self.queue.submit(attempt)
        if isinstance(result, OpenMfaError):
            raise result
        return result
