"""A person changes their own password at the User Portal: the node's own (``[portal]
primary = "local"``), or, where ``[portal] password_change`` allows, the directory's their
first factor asks (``primary = "ldap"``: a ``DirectoryPasswords`` from the wiring).

Rules owned here:
- the current password is checked first, by the node's one first-factor rule
  (``node.first_factor``): a locked person's is not checked, a wrong one counts toward the lock;
  the session must also be fresh (``[portal] reauth_minutes``: the SDK route asks);
- a new password has at least ``[portal] password_min_length`` characters (8 at the least),
  at most 128, is not the current one, and is not on the shipped list of common passwords
  (``common_passwords.txt``), nor one of them with digits, spaces or signs around it, nor the
  person's name, nor digits or a keyboard run alone;
- a change ends every other session of the person, on every node and portal host (``users.
  sessions_after`` and a ``session.end`` record, where the data format has them); this session
  goes on under a new token, given in the answer;
- it is made at the node that may write (a farm's master), refused elsewhere before the
  current password is even checked, so a directory is never changed by a node that could not
  record it;
- every attempt is audited (``password.change``, with the reason of a refusal), a password
  never: not in the audit, a log or an answer.
"""

from __future__ import annotations

import functools
import hmac
import string
import time
import unicodedata
from importlib import resources
from typing import Literal, Protocol

from anyio import to_thread

from ..config import Config
from ..contract import PasswordChanged, PasswordPolicy
from ..core.verification import Reason
from ..errors import PrimaryUnavailable
from ..store import formats
from ..store.changes import AuditEvent, Change, ChangeWriter, check_writable
from ..store.database import Store
from . import audit
from .accounts import Accounts
from .audit import NOWHERE, Origin
from .authenticator import Attempt
from .commit_queue import CommitQueue
from .first_factor import FirstFactor, PasswordCheck
from .passwords import password_change
from .portal import SESSION, SESSION_ID, Grant, PortalTokens
from .session_ends import end_change

MIN_LENGTH = 8
"""No configuration makes a new password shorter than this (NIST SP 800-63B)."""
MAX_LENGTH = 128
RUNS = (
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
    "azertyuiopqsdfghjklmwxcvbn",
    "qwertzuiopasdfghjklyxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
)
"""Letters in the order of the alphabet and of keyboards: a run of them is no password."""
_AROUND = string.digits + string.punctuation + " "


class DirectoryPasswords(Protocol):
    """The directory the first factor asks (``[ldap]``), changing a person's password as
    them: None when done, else the directory's reason for refusing (its own words, safe to
    show the person); ``PrimaryUnavailable`` when it cannot be reached or cannot tell."""

    async def change(self, user: str, current: str, new: str) -> str | None: ...


@functools.cache
def common_words() -> frozenset[str]:
    """The shipped list of common passwords and the words they are made of."""
    text = resources.files("openmfa.node").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def is_common(password: str, user: str) -> bool:
    """A password anyone would try first: on the list (any case), one of its words or the
    person's name with digits, spaces or signs around it (``Welkom2024!``), a word twice,
    digits and signs alone, a run of the alphabet or a keyboard, or a few characters again
    and again."""
    p = unicodedata.normalize("NFKC", password).casefold()
    words = common_words()
    core = p.strip(_AROUND)
    name = unicodedata.normalize("NFKC", user).casefold()
    names = {name, name.partition("@")[0], name.rpartition("\\")[2]} - {""}
    half = len(core) // 2
    return (
        p in words
        or core in words
        or core in names
        or not core
        or (len(core) % 2 == 0 and core[:half] == core[half:] and core[:half] in words)
        or len(set(core)) <= 3
        or any(core in run or core in run[::-1] for run in RUNS)
    )


def problem(new: str, current: str, user: str, min_length: int) -> str:
    """Why ``new`` cannot be ``user``'s password ("" when it can): ``too_short``,
    ``too_long``, ``same`` or ``common``."""
    if len(new) < min_length:
        return "too_short"
    if len(new) > MAX_LENGTH:
        return "too_long"
    if hmac.compare_digest(new.encode(), current.encode()):
        return "same"
    if is_common(new, user):
        return "common"
    return ""


class PasswordChange:
    def __init__(
        self,
        store: Store,
        queue: CommitQueue,
        accounts: Accounts,
        portal: PortalTokens,
        checks: dict[str, PasswordCheck],
        directory: DirectoryPasswords,
        config: Config,
    ) -> None:
        """``checks``: the node's first-factor checks (``SignInSteps`` has the same);
        ``directory``: the ``[ldap]`` directory's password change."""
        p = config.values["portal"]
        self.store, self.accounts, self.portal = store, accounts, portal
        self.first_factor = FirstFactor(store, queue)
        self.check = checks.get(portal.primary) or checks["local"]
        self.directory = directory
        self.min_length = max(MIN_LENGTH, int(p["password_min_length"]))
        self.directory_allowed = bool(p["password_change"])
        self.writer = ChangeWriter(store)

    @property
    def where(self) -> Literal["local", "directory", ""]:
        """``local``, ``directory``, or "" (not here)."""
        if self.portal.primary == "local":
            return "local"
        if self.portal.primary == "ldap" and self.directory_allowed:
            return "directory"
        return ""

    def policy(self) -> PasswordPolicy:
        return PasswordPolicy(where=self.where, min_length=self.min_length, common_list=True)

    async def change(
        self,
        grant: Grant,
        client: str,
        request_id: str,
        key: str | None,
        current: str,
        new: str,
        origin: Origin = NOWHERE,
    ) -> PasswordChanged:
        """``grant``'s person (a fresh session of theirs) changes their password from
        ``current`` to ``new``: see the module's rules. ``origin``: where their browser is (kept,
        sealed, with the audit rows: the change's, and a lock a wrong current one ends in)."""
        user, where = grant.user, self.where
        sealed = origin.sealed(self.store.box, user)
        if not where:
            return await self._refused(user, client, request_id, "not_here")
        # At the master, or NotMaster before anything is checked or changed (the SDK's client
        # asks the master then): a directory changed here could not be recorded here.
        await to_thread.run_sync(check_writable, self.store)
        d = await self.first_factor.check(
            self.check,
            Attempt(
                user,
                "",
                client=client,
                request_id=request_id,
                token=key,
                source=origin.address,
                browser=origin.browser,
                system=origin.system,
                push=False,
            ),
            current,
            AuditEvent(
                "portal.sign_in",
                "ok",
                user_name=user,
                client=client,
                request_id=request_id,
                detail=f"first factor ({self.portal.primary}), to change the password",
                source_enc=sealed,
            ),
        )
        if not d.accepted:
            reason = "locked" if d.reason is Reason.LOCKED else "wrong_password"
            return await self._refused(user, client, request_id, reason)
        why = problem(new, current, user, self.min_length)
        if why:
            return await self._refused(user, client, request_id, why)
        if where == "directory":
            try:
                said = await self.directory.change(user, current, new)
            except PrimaryUnavailable as exc:
                return await self._refused(user, client, request_id, "unavailable", exc.message)
            if said is not None:
                return await self._refused(user, client, request_id, "refused", said)
        ended = await to_thread.run_sync(
            self._commit, user, new if where == "local" else None, client, request_id, where, sealed
        )
        extra = {k: v for k, v in (grant.extra or {}).items() if k != SESSION_ID}
        token, expires = self.portal.issue(
            SESSION, user, client, max(time.time(), ended + 0.001), extra
        )
        return PasswordChanged(changed=True, reason="ok", token=token, expires_at=expires)

    def _commit(
        self, user: str, new: str | None, client: str, request_id: str, where: str, sealed: str
    ) -> float:
        """The new password (``new``: the node's own; None: the directory's, changed there)
        and the end of every session of ``user`` issued before now, in one commit; the
        moment."""
        now = time.time()
        changes: list[Change] = []
        if new is not None:
            changes.append(password_change(self.accounts, user, new, now))
        with self.store.read() as conn:
            local = formats.local_format(conn)
        if local >= formats.PREFERENCES_FORMAT:
            fields = {"sessions_after": now}
            uid = self.accounts.user_id(user)
            changes.append(Change("user.update", {"id": uid, "fields": fields, "at": now}))
        if local >= formats.SESSION_ENDS_FORMAT:
            changes.append(end_change(user, "", now))
        event = AuditEvent(
            "password.change",
            "ok",
            user_name=user,
            client=client,
            request_id=request_id,
            detail=f"{where}; every other session ended",
            source_enc=sealed,
        )
        self.writer.commit(changes, [event])
        return now

    async def _refused(
        self, user: str, client: str, request_id: str, reason: str, detail: str = ""
    ) -> PasswordChanged:
        event = AuditEvent(
            "password.change",
            "rejected",
            user_name=user,
            client=client,
            request_id=request_id,
            reason=reason,
            detail=detail[:200],
        )
        await to_thread.run_sync(audit.record, self.store, event)
        return PasswordChanged(
            changed=False,
            reason=reason,  # type: ignore[arg-type]
            detail=detail if reason == "refused" else "",
            min_length=self.min_length,
        )
