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
  code), or a push the phone approved (``Attempt.push_approved``, every RADIUS push flow: held,
  challenged, relayed), starts a new window.

On a farm subordinate with its own data file the master keeps the cache (``on_master``): a
full success is sent to it after the commit (a ``cache-keep`` claim, as failures are), and a
hit is claimed there after the password (``cache-take``: the same checks on the master's data,
the same conditional update), so M holds farm-wide. Before the password a subordinate answers
that the request *may* be skipped (it cannot look): the password is checked, then the master
decides, and a refusal only means the second factor is asked as usual. A subordinate claims
only once the farm is at ``formats.RADIUS_CACHE_FORMAT`` (an older master would refuse the
whole batch's claims); before that it does not cache.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Integer, bindparam, delete, func, insert, select, update

from ..core.policy import MAX_REMEMBER_MINUTES, Compiled
from ..store import formats
from ..store import tables as t
from ..store.database import Store
from ..store.prepared import Prepared
from .auth_state import CachedUser
from .master_claims import Claim, ClaimResult, Verdicts

if TYPE_CHECKING:
    from .authenticator import Attempt

TAKE, KEEP = "cache-take", "cache-keep"
"""The claims a subordinate makes at the master (``farm.claims.KINDS``)."""

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
        self._format = Prepared(e, select(t.meta.c.value).where(t.meta.c.key == "data_format"))

    def applies(
        self, cur: Any, rule: Compiled | None, channel: str, station: str, remote: bool
    ) -> bool:
        """Whether caching applies to a request: its rule caches on the RADIUS channel (on a
        subordinate, ``remote``, only with a Calling-Station-Id, once the farm claims it)."""
        on = rule is not None and rule.rule.caches and channel == "radius"
        return on and (not remote or (bool(station) and self.farm_ready(cur)))

    def start(
        self, cur: Any, user: CachedUser, a: Attempt, now: float, after: list[Claim] | None
    ) -> None:
        """A full success of ``a``: a new window here, or (a subordinate: ``after`` is its
        round's claims sent once committed) at the master."""
        if after is not None:
            after.append(keep_claim(user.id, a.channel_client, a.station, now))
        else:
            self.remember(cur, user, a.channel_client, a.station, now)

    def farm_ready(self, cur: Any) -> bool:
        """This (subordinate) node's farm claims RADIUS caching at the master."""
        row = self._format.one(cur)
        return row is not None and int(row[0] or 0) >= formats.RADIUS_CACHE_FORMAT

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


def take_claim(user_id: int, client: str, station: str, rule: Compiled, request: str) -> Claim:
    """A subordinate's claim of a hit at the master (after the password); ``request``: the
    request's id, so two requests of one batch are two claims (two uses), never one."""
    minutes, uses = rule.rule.remember_minutes, rule.rule.cache_uses
    return (str(user_id), TAKE, json.dumps([client, station, minutes, uses, request]))


def cache_at_master(a: Attempt, user_id: int, rule: Compiled, verdicts: Verdicts) -> str:
    """A subordinate's cache hit, claimed at the master after the password ("" for none, or
    not asked yet: this pass is then rolled back); before it, one *may* be there."""
    if a.before_first_factor:
        return "at the master"
    claim = take_claim(user_id, a.channel_client, a.station, rule, a.request_id)
    known = verdicts.known.get(claim)
    if known is None and not verdicts.final:
        verdicts.wanted.append(claim)
    if known is not ClaimResult.OK:
        return ""
    return f"second factor cached by policy rule {rule.name} (claimed at the master)"


def keep_claim(user_id: int, client: str, station: str, now: float) -> Claim:
    """A subordinate's full success, for the master to start a window (``now``: one claim per
    success, never taken for an earlier one's)."""
    return (str(user_id), KEEP, json.dumps([client, station, now]))


def on_master(conn: Connection, now: float, subject: str, kind: str, value: str) -> str:
    """A subordinate's cache claim applied to the master's data: "ok", or "used" (no hit)."""
    try:
        user_id = int(subject)
        said = json.loads(value)
        client, station = str(said[0]), str(said[1])
        if kind == TAKE:
            minutes, limit = float(said[2]), int(said[3])
            if not (math.isfinite(minutes) and 0 < minutes <= MAX_REMEMBER_MINUTES):
                return "used"
    except (ValueError, TypeError, IndexError, KeyError):
        return "used"  # a claim no release of ours sends: nothing to take
    if not station:
        return "used"
    locked = conn.execute(
        select(t.user_state.c.locked_until).where(t.user_state.c.user_id == user_id)
    ).scalar()
    if locked is not None and locked > now:
        return "used"  # a locked person starts no window and takes no hit
    key = (_C.user_id == user_id) & (_C.client == client) & (_C.station == station)
    mids = conn.execute(select(t.methods.c.id).where(t.methods.c.user_id == user_id))
    have = {str(m) for (m,) in mids}
    if kind == KEEP:
        conn.execute(delete(t.radius_cache).where(key))
        conn.execute(
            insert(t.radius_cache).values(
                user_id=user_id,
                client=client,
                station=station,
                at=now,
                uses=0,
                methods=",".join(sorted(have)),
            )
        )
        return "ok"
    row = conn.execute(select(_C.at, _C.uses, _C.methods).where(key)).first()
    name = conn.execute(select(t.users.c.name).where(t.users.c.id == user_id)).scalar()
    if row is None or name is None:
        return "used"
    at, uses, methods = float(row[0]), int(row[1]), str(row[2])
    if not at <= now < at + minutes * 60.0 or uses >= limit:
        return "used"
    if any(m not in have for m in methods.split(",") if m):
        return "used"
    ended = conn.execute(
        select(func.count())
        .select_from(t.session_ends)
        .where(_SE.user_name == name, _SE.session == "", _SE.at >= at)
    ).scalar()
    changed = conn.execute(
        select(func.count())
        .select_from(t.passwords)
        .where(_PW.user_id == user_id, _PW.updated_at >= at)
    ).scalar()
    if ended or changed:
        return "used"
    took = conn.execute(
        update(t.radius_cache).where(key, _C.at == row[0], _C.uses == uses).values(uses=uses + 1)
    )
    return "ok" if took.rowcount == 1 else "used"
