"""RADIUS caching: a VPN that re-authenticates every few minutes does not ask the phone again.

A policy rule of the RADIUS channel with ``--remember-minutes N --cache-uses M``
(``core.policy.Rule.caches``) lets a full success — the password and a second factor — of one
person, through one RADIUS client, from one Calling-Station-Id stand for the second factor of
that same triple's next requests: at most M of them, within N minutes of the success.

Rules owned here (the authenticator calls them inside its one transaction):
- only the second factor is ever cached: a hit is taken only after the node checked the
  password (``Attempt.first_factor_passed``, ``node.first_factor``); the request before the
  password check is only told it *may* be skipped (nothing used up);
- a hit needs the same person, RADIUS client and a non-empty Calling-Station-Id as the
  success (a request with no Calling-Station-Id is never cached), less than N minutes since
  the success (never a success "in the future"), and fewer than M uses;
- never across a password change, a lock, a disable, a deletion, a "sign out everywhere", an
  unlock (each writes a ``session.end`` of every session, ``node.session_ends``; a lock is
  recorded so by the master, and cleared here at once when this node locks), a password set
  by an administrator (``passwords.updated_at``), or a device revocation (a method the person
  had at the success is gone);
- each use is a conditional update (``uses = uses + 1`` where it still has the count read and
  the same success): exact on one SQLite file and on one shared PostgreSQL database, so M holds
  across every node writing it;
- a bypass, a skip or a cache hit is no full success: only a code of a method (or a backup
  code) starts a new window.

A farm subordinate with its own data file neither caches nor takes a hit yet (it asks for the
second factor, as before caching existed): claiming the uses at the master is a later part.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, bindparam, delete, func, insert, select, update

from ..core.policy import Compiled
from ..store import tables as t
from ..store.database import Store
from ..store.prepared import Prepared
from .auth_state import CachedUser

_C, _SE, _PW = t.radius_cache.c, t.session_ends.c, t.passwords.c
_KEY = (
    (_C.user_id == bindparam("uid", type_=Integer))
    & (_C.client == bindparam("client"))
    & (_C.station == bindparam("station"))
)


class RadiusCache:
    """The cache's statements, compiled once (``store.prepared``); not thread-safe, like the
    authenticator that holds it."""

    def __init__(self, store: Store) -> None:
        e = store.engine
        self._row = Prepared(e, select(_C.at, _C.uses, _C.methods).where(_KEY))
        self._ended = Prepared(
            e,
            select(func.count())
            .select_from(t.session_ends)
            .where(
                _SE.user_name == bindparam("name"), _SE.session == "", _SE.at >= bindparam("at")
            ),
        )
        self._password = Prepared(
            e,
            select(func.count())
            .select_from(t.passwords)
            .where(
                _PW.user_id == bindparam("uid", type_=Integer), _PW.updated_at >= bindparam("at")
            ),
        )
        self._take = Prepared(
            e,
            update(t.radius_cache)
            .where(_KEY, _C.at == bindparam("at"), _C.uses == bindparam("uses"))
            .values(uses=_C.uses + 1),
        )
        self._drop = Prepared(e, delete(t.radius_cache).where(_KEY))
        self._keep = Prepared(
            e,
            insert(t.radius_cache).values(
                user_id=bindparam("uid", type_=Integer),
                client=bindparam("client"),
                station=bindparam("station"),
                at=bindparam("at"),
                uses=0,
                methods=bindparam("methods"),
            ),
        )
        self._forget = Prepared(
            e, delete(t.radius_cache).where(_C.user_id == bindparam("uid", type_=Integer))
        )

    def hit(
        self,
        cur: Any,
        user: CachedUser,
        where: tuple[str, str, str],
        rule: Compiled,
        now: float,
        *,
        take: bool,
    ) -> str:
        """The audit detail of a cache hit for this request ("" for none). ``where``: the
        person's name, the RADIUS client's and the Calling-Station-Id. ``take``: use it up (the
        password was checked right), else only say whether there is one."""
        name, client, station = where
        if not station:
            return ""
        key = {"uid": user.id, "client": client, "station": station}
        row = self._row.one(cur, **key)
        if row is None:
            return ""
        at, uses, methods = float(row[0]), int(row[1]), str(row[2])
        limit = rule.rule.cache_uses
        if not at <= now < at + rule.rule.remember_minutes * 60.0 or uses >= limit:
            return ""
        have = {m.id for m in user.methods}
        if any(m not in have for m in methods.split(",") if m):
            return ""  # a method (a device) of the success was revoked since
        if self._count(self._ended, cur, name=name, at=at) or self._count(
            self._password, cur, uid=user.id, at=at
        ):
            return ""
        if take and self._take.run(cur, **key, at=row[0], uses=uses) != 1:
            return ""  # another node used it (or a new success replaced it) just now
        n = uses + 1 if take else uses
        return f"second factor cached by policy rule {rule.name} (use {n} of {limit})"

    def remember(self, cur: Any, user: CachedUser, client: str, station: str, now: float) -> None:
        """A full success of ``user`` through ``client`` from ``station``: a new window."""
        if not station:
            return
        key = {"uid": user.id, "client": client, "station": station}
        self._drop.run(cur, **key)
        methods = ",".join(sorted(m.id for m in user.methods))
        self._keep.run(cur, **key, at=now, methods=methods)

    def forget(self, cur: Any, user_id: int) -> None:
        """Every entry of a person (newly locked here)."""
        self._forget.run(cur, uid=user_id)

    @staticmethod
    def _count(statement: Prepared, cur: Any, **values: Any) -> int:
        row = statement.one(cur, **values)
        return int(row[0]) if row is not None else 0
