"""Sessions ended: the one place that decides whether a portal session token or a forward-auth
cookie still stands, and the revocation view every portal host keeps from it.

A session ends when its person signs out of it, and every session of a person issued before a
moment ends when they sign out everywhere, are disabled, deleted or locked, or are unlocked by
the helpdesk. Each of these is a ``session.end`` change record (data format 6), so it
replicates to every node of the farm. The node checks its own session tokens against the rows
on each portal call; a portal host cannot afford a call per proxied request, so it keeps a
*view* (``GET /v1/portal/sessions/ended``): what is new since the last row id it saw, and who
is locked right now. Names never leave the node: the view names a person by a *subject*, a
keyed hash of their name that only a node can compute, given to the portal in the signed-in
person's own ``PortalMe`` — so a stolen portal key learns no one's name from it.

Invariant owned here: a lock ends sessions for good, not only while it lasts. The node that
may write (the master, which counts every node's failures) records each new lock as a
``session.end`` of every session issued before it, within ``RECORD_LOCKS_EVERY`` seconds; until
then the lock is in the view's ``locked`` list, which a portal host turns into a cut-off of its
own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, func, select

from ..errors import Conflict, NotMaster
from ..store import formats
from ..store import tables as t
from ..store.changes import SESSION_ENDS_KEEP, AuditEvent, Change, ChangeWriter
from ..store.database import Store

log = logging.getLogger("openmfa.node")
KEEP_SECONDS = SESSION_ENDS_KEEP
"""How long a row stays: a session older than this is refused whatever the rows say."""
_SE = t.session_ends.c
# ``ended``'s statements, built once: every portal call about a person asks it.
_ALL = and_(_SE.session == "", _SE.at >= bindparam("issued_at"))
_ENDED_ALL = select(_SE.id).where(_SE.user_name == bindparam("user"), _ALL).limit(1)
_ENDED = (
    select(_SE.id)
    .where(_SE.user_name == bindparam("user"), (_SE.session == bindparam("session")) | _ALL)
    .limit(1)
)
_LOCKED = (
    select(t.user_state.c.locked_until)
    .select_from(t.user_state.join(t.users))
    .where(t.users.c.name == bindparam("user"))
)
PAGE = 2000
RECORD_LOCKS_EVERY = 2.0
"""Rows in one answer of the view (a portal host asks again while ``more`` is true)."""


@dataclass(frozen=True)
class Ended:
    """One row of the view: ``session`` ended, or (``session`` empty) every session of
    ``subject`` issued before ``at``."""

    id: int
    subject: str
    session: str
    at: float


@dataclass(frozen=True)
class View:
    ends: list[Ended]
    locked: list[str]
    """Subjects locked right now."""
    last_id: int
    more: bool
    keep_seconds: float
    epoch: int = 0
    """The farm's epoch: a promotion that lost rows may number new ones again, so a portal
    host reads everything again when it changes."""


def ended_in(conn: Connection, user: str, session: str, issued_at: float, now: float) -> bool:
    """``SessionEnds.ended``, read in ``conn``'s transaction (with the other checks of a
    signed-in person's call, ``node.signed_in``)."""
    if issued_at <= now - KEEP_SECONDS:
        return True
    if formats.local_format(conn) < formats.SESSION_ENDS_FORMAT:
        return False
    said = {"user": user, "session": session, "issued_at": issued_at}
    if conn.scalar(_ENDED if session else _ENDED_ALL, said) is not None:
        return True
    locked = conn.scalar(_LOCKED, {"user": user})
    return locked is not None and locked > now


def end_change(
    user: str, session: str = "", at: float | None = None, lock_until: float | None = None
) -> Change:
    """The change record that ends ``session`` of ``user`` (every session issued before ``at``
    when ``session`` is empty; ``lock_until``: the lock it records)."""
    payload: dict[str, object] = {
        "user": user,
        "session": session,
        "at": time.time() if at is None else at,
    }
    if lock_until is not None:
        payload["lock_until"] = lock_until
    return Change("session.end", payload)


def ends_known(store: Store) -> bool:
    """Whether this data set takes ``session.end`` records (data format 6)."""
    with store.read() as conn:
        return formats.local_format(conn) >= formats.SESSION_ENDS_FORMAT


class SessionEnds:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.writer = ChangeWriter(store)
        self._key = hmac.new(store.box.pepper, b"openmfa session subjects", "sha256").digest()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Record new locks every ``RECORD_LOCKS_EVERY`` seconds (a no-op off the master)."""
        self._task = asyncio.get_running_loop().create_task(self._record_locks_loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _record_locks_loop(self) -> None:
        while True:
            await asyncio.sleep(RECORD_LOCKS_EVERY)
            try:
                await asyncio.to_thread(self.record_locks, time.time())
            except Exception:  # a busy or closed store: the next round tries again
                log.debug("recording locks failed", exc_info=True)

    def subject(self, user: str) -> str:
        """The name a portal host knows ``user`` by in the view (not reversible without the
        data key)."""
        mac = hmac.new(self._key, user.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(mac).decode()

    def end(self, user: str, session: str = "", *, client: str = "cli", rid: str = "") -> bool:
        """End ``session`` of ``user`` (every session of theirs, when empty), on every node;
        False when the data set is not yet at format 6 (nothing is recorded then)."""
        if not ends_known(self.store):
            return False
        event = AuditEvent(
            "session.end",
            "ok",
            user_name=user,
            client=client,
            request_id=rid,
            detail="one session" if session else "every session",
        )
        self._commit([end_change(user, session)], [event])
        return True

    def _commit(self, changes: list[Change], audit: list[AuditEvent]) -> None:
        for attempt in range(3):  # two writers of a shared database may take the same id
            try:
                self.writer.commit(changes, audit)
                return
            except Conflict:
                if attempt == 2:
                    raise
                for c in changes:
                    c.payload.pop("id", None)

    def ended(self, user: str, session: str, issued_at: float, now: float) -> bool:
        """Whether the session ``session`` of ``user``, issued at ``issued_at``, has ended."""
        if issued_at <= now - KEEP_SECONDS:
            return True
        with self.store.read() as conn:
            return ended_in(conn, user, session, issued_at, now)

    def view(self, after: int, now: float) -> View:
        """What ended since row ``after``, and who is locked now (see the module's text)."""
        se = t.session_ends
        with self.store.read() as conn:
            if formats.local_format(conn) < formats.SESSION_ENDS_FORMAT:
                rows = []
            else:
                rows = list(
                    conn.execute(
                        select(se.c.id, se.c.user_name, se.c.session, se.c.at)
                        .where(se.c.id > after)
                        .order_by(se.c.id)
                        .limit(PAGE + 1)
                    )
                )
            epoch = int(
                conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "farm.epoch")) or 0
            )
            locked = list(
                conn.execute(
                    select(t.users.c.name)
                    .select_from(t.user_state.join(t.users))
                    .where(t.user_state.c.locked_until > now)
                ).scalars()
            )
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        ends = [Ended(r.id, self.subject(r.user_name), r.session, r.at) for r in rows]
        last = ends[-1].id if ends else after
        return View(ends, [self.subject(u) for u in locked], last, more, KEEP_SECONDS, epoch)

    def record_locks(self, now: float) -> None:
        """At the node that may write (the master, which counts every node's failures): each
        lock not yet recorded becomes a ``session.end`` of every session issued before now, so
        the sessions it ended stay ended once it is over. The node runs this every
        ``RECORD_LOCKS_EVERY`` seconds; elsewhere it does nothing."""
        se, us = t.session_ends, t.user_state
        with self.store.read() as conn:
            if formats.local_format(conn) < formats.SESSION_ENDS_FORMAT:
                return
            recorded = (
                select(func.count())
                .select_from(se)
                .where(se.c.user_name == t.users.c.name, se.c.lock_until == us.c.locked_until)
                .scalar_subquery()
            )
            unrecorded = list(
                conn.execute(
                    select(t.users.c.name, us.c.locked_until)
                    .select_from(us.join(t.users))
                    .where(us.c.locked_until > now, recorded == 0)
                )
            )
        if not unrecorded:
            return
        changes = [end_change(r.name, "", now, float(r.locked_until)) for r in unrecorded]
        audit = [
            AuditEvent("session.end", "ok", user_name=r.name, detail="every session (locked)")
            for r in unrecorded
        ]
        with contextlib.suppress(NotMaster, Conflict):  # a subordinate, or a handover:
            self._commit(changes, audit)  # the master records it when asked
