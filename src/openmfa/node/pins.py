"""People's PINs (PIN mode, the original's "PIN + code"): set and cleared by an administrator
(``openmfa user pin set|clear``, the SDK's ``PUT|DELETE /v1/users/{name}/pin``), and checked
before a code where a policy rule says ``pin=required``.

Rules owned here:
- a PIN is 4 to 12 digits (``PIN_RE``); it is stored only as an argon2id hash with its length,
  through ``user.pin`` records, written only once the data set is at format 13;
- a field of PIN and code is split by the PIN's length: the PIN is the first ``length``
  characters (spaces ignored), the rest is the code — or, empty or ``push``, a push. One
  argon2 check decides it, whatever the field holds: a code alone is a wrong PIN;
- argon2 is slow (tens of milliseconds), so it never runs inside the commit queue's batch: the
  authenticator answers ``pin_needed`` (nothing counted, nothing audited) for an attempt under
  such a rule, ``checked`` reads the hash and verifies it in a worker thread, and the attempt
  is decided again with the verdict (``Attempt.pin``) and the code alone. A person without a
  PIN costs the same check (a dummy hash), so the time tells nothing.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..contract import UserView
from ..errors import InvalidInput
from ..store import formats
from ..store.changes import AuditEvent, Change, ChangeWriter
from ..store.database import Store
from ..store.pin_records import pin_of
from .accounts import Accounts, Actor
from .authenticator import Attempt
from .passwords import _dummy

PIN_RE = re.compile(r"[0-9]{4,12}")
"""A PIN's form (the SDK's request says the same: ``contract.PinSet``)."""
_HASHER = PasswordHasher()

OK, WRONG, UNSET, ELSEWHERE = "ok", "wrong", "unset", "elsewhere"
"""``Attempt.pin``'s verdicts ("": not checked). ``ELSEWHERE``: the channel cannot carry a PIN
(MS-CHAPv2, EAP): the rule's ``pin_elsewhere`` decides."""


class Pins:
    """An administrator's PIN commands."""

    def __init__(self, store: Store, accounts: Accounts) -> None:
        self.store = store
        self.accounts = accounts
        self.writer = ChangeWriter(store)

    def set(self, name: str, pin: str, actor: Actor | None = None) -> UserView:
        """Set ``name``'s PIN (replacing the one they had)."""
        if PIN_RE.fullmatch(pin) is None:
            raise InvalidInput("a PIN is 4 to 12 digits (0-9)")
        return self._write(name, _HASHER.hash(pin), len(pin), "user.pin.set", actor)

    def clear(self, name: str, actor: Actor | None = None) -> UserView:
        """Remove ``name``'s PIN (no error if they had none)."""
        return self._write(name, None, 0, "user.pin.clear", actor)

    def _write(
        self, name: str, hashed: str | None, length: int, action: str, actor: Actor | None
    ) -> UserView:
        actor = actor or Actor()
        user_id = self.accounts.user_id(name)  # NotFound first
        with self.store.read() as conn:
            formats.require(conn, formats.PIN_FORMAT, "PINs")
        payload = {"id": user_id, "hash": hashed, "length": length, "at": time.time()}
        self.writer.commit(
            [Change("user.pin", payload)],
            [
                AuditEvent(
                    action, "ok", user_name=name, client=actor.client, request_id=actor.request_id
                )
            ],
        )
        return self.accounts.get_user(name)


def verify(store: Store, user: str, field: str) -> tuple[str, str]:
    """(verdict, the code after the PIN) for what ``user`` typed (blocking: argon2)."""
    typed = "".join(field.split())
    with store.read() as conn:
        found = pin_of(conn, user)
    if found is None:
        _check(_dummy(), typed)  # the same work as a known PIN's
        return UNSET, ""
    hashed, length = found
    if _check(hashed, typed[:length]):
        return OK, typed[length:]
    return WRONG, ""


def _check(hashed: str, pin: str) -> bool:
    try:
        return bool(_HASHER.verify(hashed, pin))
    except (VerificationError, InvalidHashError):
        return False


async def checked(store: Store, attempt: Attempt) -> Attempt:
    """``attempt`` (answered ``pin_needed``) with its PIN checked in a worker thread: the
    verdict in ``pin``, the code after the PIN in ``code``; decide it again."""
    verdict, code = await asyncio.to_thread(verify, store, attempt.user, attempt.code)
    return replace(attempt, code=code, pin=verdict)
