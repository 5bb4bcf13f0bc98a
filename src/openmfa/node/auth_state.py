"""The authentication state of a node's data file, as the authenticator reads and writes it:
prepared SQL, the configuration cache, the state cache and its batched flush, and the one
"only ever forward" update every writer of authentication state uses.

Configuration (users, methods, decrypted seeds) is cached; when the configuration generation
moves, the change records since the cached one say which users to forget (all of them if the
gap is large).

State (failures, lockout, bypass, TOTP steps, HOTP counters):
- On SQLite the authenticator writes through a connection of its own and keeps the state it
  read or wrote. ``PRAGMA data_version`` tells, under the write lock, whether any other
  connection (the CLI, an admin request, another process) committed since; if so the cache is
  dropped. So the cached state is exactly what the file holds, and the state writes of a batch
  go out together at its end. They stay conditional (``last_step < new``), and a batch whose
  writes do not all apply is rolled back and decided again from fresh state.
- On PostgreSQL, where another node may write the same rows at any time, state is read fresh
  inside the write transaction and every claim is a conditional update checked on the spot, so
  a code can still be accepted only once.

``forward`` is that conditional update for everyone else: a farm master applying a
subordinate's claim, a subordinate applying the master's state push, an HOTP resync.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    String,
    Update,
    bindparam,
    func,
    insert,
    select,
    update,
)

from ..core.lockout import UserState
from ..core.verification import KINDS, Method, MethodKind, MethodState
from ..errors import StaleState
from ..store import tables as t
from ..store.database import Store
from ..store.prepared import Prepared, PreparedInsert

FORGET_ALL_AFTER = 1000
"""More configuration changes than this since the cache was filled: drop the whole cache."""
MAX_CACHED_USERS = 200_000


class Discard(Exception):
    """Raised inside ``AuthState.transaction`` to roll the pass back and keep the connection
    (the authenticator's ``Collected``)."""


def step_forward() -> Update:
    """Use up TOTP steps up to ``:v`` of method ``:mid`` (nothing if a later one was used)."""
    ms = t.method_state
    v = bindparam("v", type_=Integer)
    return (
        update(ms)
        .where(ms.c.method_id == bindparam("mid", type_=String), ms.c.last_step < v)
        .values(last_step=v)
    )


def counter_forward() -> Update:
    """Move HOTP method ``:mid``'s counter to ``:v`` (nothing if it is there already)."""
    ms = t.method_state
    v = bindparam("v", type_=Integer)
    return (
        update(ms)
        .where(ms.c.method_id == bindparam("mid", type_=String), ms.c.counter < v)
        .values(counter=v)
    )


def forward(conn: Connection, method_id: str, kind: str, value: int | str) -> bool:
    """Use up a TOTP step, HOTP counter or backup code (its hash, hex) if nothing later was
    used: True if it applied. The one "only ever forward" update of authentication state."""
    if kind == "totp":
        stmt = step_forward()
    elif kind == "hotp":
        stmt = counter_forward()
    else:
        return _backup_used(conn, method_id, str(value))
    return bool(conn.execute(stmt, {"mid": method_id, "v": int(value)}).rowcount == 1)


def _backup_used(conn: Connection, method_id: str, code_hash: str) -> bool:
    bc = t.backup_codes
    stmt = (
        update(bc)
        .where(
            bc.c.method_id == method_id,
            bc.c.code_hash == bytes.fromhex(code_hash),
            bc.c.used_at.is_(None),
        )
        .values(used_at=time.time())
    )
    return bool(conn.execute(stmt).rowcount == 1)


@dataclass(frozen=True, slots=True)
class CachedUser:
    id: int
    enabled: bool
    methods: list[Method]
    has_backup: bool
    groups: frozenset[str] = frozenset()
    """The person's groups (both origins): read with the user, only while a policy rule asks
    for groups (``AuthState.with_groups``)."""


@dataclass(slots=True)
class CachedState:
    user: UserState
    methods: dict[str, MethodState]


@dataclass(slots=True)
class Pending:
    """State writes of one batch (SQLite), sent with ``executemany`` before the commit."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    counters: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    forward: dict[str, list[dict[str, Any]]] = field(init=False)
    """The claims of a batch by the state field they move (``Kind.moves``)."""

    def __post_init__(self) -> None:
        self.forward = {"last_step": self.steps, "counter": self.counters}


@dataclass(slots=True)
class ConfigCache:
    generation: int = -1
    users: dict[str, CachedUser | None] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    """user id -> name, to forget a user named in a change record only by id."""


class Statements:
    def __init__(self, store: Store) -> None:
        e = store.engine
        us, ms, bc, m = t.user_state, t.method_state, t.backup_codes, t.methods
        uid = bindparam("uid", type_=Integer)
        self.generation = Prepared(e, select(func.coalesce(func.max(t.changes.c.seq), 0)))
        self.changes_since = Prepared(
            e,
            select(t.changes.c.seq, t.changes.c.kind, t.changes.c.payload)
            .where(t.changes.c.seq > bindparam("gen"))
            .order_by(t.changes.c.seq),
        )
        self.user = Prepared(
            e, select(t.users.c.id, t.users.c.enabled).where(t.users.c.name == bindparam("name"))
        )
        self.groups = Prepared(
            e, select(t.user_groups.c.name).where(t.user_groups.c.user_id == uid).distinct()
        )
        self.methods = Prepared(
            e,
            select(m.c.id, m.c.kind, m.c.secret_enc, m.c.digits, m.c.period, m.c.algorithm)
            .where(m.c.user_id == uid)
            .order_by(m.c.created_at, m.c.id),
        )
        self.state = Prepared(
            e,
            select(
                us.c.failures,
                us.c.locked_until,
                us.c.bypass_until,
                ms.c.method_id,
                ms.c.last_step,
                ms.c.counter,
            )
            .select_from(us.outerjoin(ms, ms.c.user_id == us.c.user_id))
            .where(us.c.user_id == uid),
        )
        self.backup = Prepared(
            e,
            select(bc.c.id, bc.c.method_id, bc.c.code_hash)
            .join(m, m.c.id == bc.c.method_id)
            .where(m.c.user_id == uid, bc.c.used_at.is_(None)),
        )
        self.claim_step = Prepared(e, step_forward())
        self.claim_counter = Prepared(e, counter_forward())
        self.forward = {"last_step": self.claim_step, "counter": self.claim_counter}
        """The "only forward" update by the state field it moves (``Kind.moves``)."""
        self.claim_backup = Prepared(
            e,
            update(bc)
            .where(bc.c.id == bindparam("bid"), bc.c.used_at.is_(None))
            .values(used_at=bindparam("now")),
        )
        self.set_state = Prepared(
            e,
            update(us)
            .where(us.c.user_id == uid)
            .values(
                failures=bindparam("f"), locked_until=bindparam("lu"), bypass_until=bindparam("bu")
            ),
        )
        self.audit = PreparedInsert(
            e,
            insert(t.audit).values({c: bindparam(c) for c in t.AUDIT_COLUMNS}),
        )


class AuthState:
    """Not thread-safe: used by the authenticator's one thread."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sql = Statements(store)
        self.exact = store.engine.dialect.name == "sqlite"
        self._cache = ConfigCache()
        self._states: dict[int, CachedState] = {}
        self._conn: Connection | None = None
        self._data_version: int | None = None
        self.rules_changed = True
        """A ``policy.*`` record was applied since the rules were last compiled (or the cache
        could not follow the generation): ``node.policy_rules.RuleCache`` rebuilds."""
        self.with_groups = False
        """Read each user's groups with them (a policy rule asks for groups)."""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        if not self.exact:
            with self.store.write() as conn:
                yield conn
            return
        if self._conn is None:
            self._conn = self.store.engine.connect().execution_options(write=True)
        try:
            with self.store.write_lock, self._conn.begin():
                yield self._conn
        except Discard:
            self._states.clear()  # it held the tentative pass's state
            raise
        except BaseException:
            self._states.clear()
            self._data_version = None
            self.close()  # a connection that failed mid-transaction is not reused
            raise

    def check_states(self, cur: Any) -> None:
        """Drop cached state if any other connection committed since our last transaction."""
        version = cur.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version or len(self._states) > MAX_CACHED_USERS:
            self._states.clear()
            self._data_version = version

    def refresh(self, cur: Any) -> int:
        """Bring the cache to the current generation; returns it."""
        row = self.sql.generation.one(cur)
        generation = int(row[0]) if row else 0
        cache = self._cache
        if generation == cache.generation:
            return generation
        if cache.generation < 0 or generation - cache.generation > FORGET_ALL_AFTER:
            self._cache = ConfigCache(generation)
            self.rules_changed = True
            return generation
        rows = self.sql.changes_since.all(cur, gen=cache.generation)
        if not rows or rows[0][0] != cache.generation + 1:
            # Records were pruned, or the data was replaced (a farm re-bootstrap): the gap
            # cannot be read, so nothing cached can be trusted.
            self._cache = ConfigCache(generation)
            self.rules_changed = True
            return generation
        for _, kind, payload in rows:
            p = json.loads(payload) if isinstance(payload, str) else payload
            if kind.startswith("user."):
                self.forget(user_id=p.get("id"), name=p.get("name"))
            elif kind == "method.add":
                self.forget(user_id=p.get("user_id"))
            elif kind.startswith("policy."):
                self.rules_changed = True
            elif kind == "method.remove":
                for name, user in list(cache.users.items()):
                    if user is not None and any(m.id == p.get("id") for m in user.methods):
                        self.forget(name=name)
        cache.generation = generation
        return generation

    def read_groups(self, wanted: bool) -> None:
        """Read users' groups with them from now on (or not); cached users read the other way
        are forgotten when that changes."""
        if wanted != self.with_groups:
            self.with_groups = wanted
            self._cache = ConfigCache(self._cache.generation)

    def forget(self, *, user_id: int | None = None, name: str | None = None) -> None:
        cache = self._cache
        if user_id is not None and user_id in cache.names:
            cache.users.pop(cache.names.pop(user_id), None)
        if name is not None:
            cache.users.pop(name, None)

    def flush(self, cur: Any, pending: Pending) -> None:
        for statement, rows in (
            (self.sql.claim_step, pending.steps),
            (self.sql.claim_counter, pending.counters),
            (self.sql.set_state, pending.users),
        ):
            if rows:
                statement.many(cur, rows)
                if cur.rowcount != len(rows):
                    raise StaleState("authentication state changed under the cache; retrying")

    def state(self, cur: Any, user_id: int, exact: bool) -> CachedState:
        if exact:
            cached = self._states.get(user_id)
            if cached is not None:
                return cached
        rows = self.sql.state.all(cur, uid=user_id)
        found = CachedState(
            UserState(rows[0][0], rows[0][1], rows[0][2]) if rows else UserState(),
            {r[3]: MethodState(r[4], r[5]) for r in rows if r[3] is not None},
        )
        if exact:
            self._states[user_id] = found
        return found

    def user(self, cur: Any, name: str) -> CachedUser | None:
        cache = self._cache
        if name in cache.users:
            return cache.users[name]
        row = self.sql.user.one(cur, name=name)
        user: CachedUser | None = None
        if row is not None:
            user_id, enabled = int(row[0]), bool(row[1])
            methods: list[Method] = []
            for method_id, kind_text, sealed, digits, period, algorithm in self.sql.methods.all(
                cur, uid=user_id
            ):
                if kind_text not in KINDS:
                    continue  # a later release's kind (mid-upgrade): not one this node checks
                kind = MethodKind(kind_text)
                if not KINDS[kind].keyed:
                    methods.append(Method(method_id, kind))
                else:
                    key = self.store.box.open(bytes(sealed), method_id)
                    methods.append(Method(method_id, kind, key, digits, period, algorithm))
            has_backup = any(
                m.kind in (MethodKind.BACKUP_CODES, MethodKind.ACCESS_CODE) for m in methods
            )
            groups: frozenset[str] = frozenset()
            if self.with_groups:
                groups = frozenset(r[0] for r in self.sql.groups.all(cur, uid=user_id))
            user = CachedUser(user_id, enabled, methods, has_backup, groups)
            cache.names[user_id] = name
        if len(cache.users) >= MAX_CACHED_USERS:
            self._cache = cache = ConfigCache(cache.generation)
        cache.users[name] = user
        return user
