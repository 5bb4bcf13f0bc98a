"""Authentication attempts against the data file: load, ``core.verification.decide``, store.

Invariant owned here: the decision, its state changes (TOTP step, HOTP counter, backup code,
failure count, lockout, spent bypass) and its audit record are committed in one transaction
before the answer is given. ``run`` takes a batch of attempts so a server can commit many
concurrent attempts together; each attempt still sees the effects of the ones before it.

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
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from sqlalchemy import Connection, Integer, String, bindparam, func, insert, select, update

from ..core.lockout import UserState, after_failure
from ..core.verification import (
    Decision,
    Method,
    MethodKind,
    MethodState,
    Outcome,
    Reason,
    VerifyPolicy,
    decide,
)
from ..errors import OpenMfaError, StaleState
from ..store import tables as t
from ..store.database import Store
from ..store.prepared import Prepared, dbapi_cursor
from .apikeys import KeyRing


class ClaimResult(Enum):
    OK = "ok"
    USED = "used"
    """Another node of the farm used this code (or a later one) first."""
    UNREACHABLE = "unreachable"
    LOCKED = "locked"
    """The user is locked out at the master (failures on any node count there)."""


Claim = tuple[str, str, int | str]
"""(method id, "totp" | "hotp" | "backup", step | counter | code hash)."""


class RemoteClaims(Protocol):
    """The farm's master, where a subordinate claims what an acceptance uses up."""

    fail_closed: bool

    def claim(self, method_id: str, kind: str, value: int | str) -> ClaimResult: ...

    def claim_many(self, claims: list[Claim]) -> list[ClaimResult]:
        """Claims of one batch in one round trip, applied in order."""
        ...


@dataclass(slots=True)
class _Verdicts:
    """How a batch's remote claims are made: first collected (one round trip for all), then
    the batch is decided again with the master's answers."""

    collect: list[Claim] | None = None
    known: dict[Claim, ClaimResult] = field(default_factory=dict)


class _Collected(Exception):
    """The batch needs remote claims: roll back, ask the master once, decide again."""


CLAIMED = "claimed at the master"
USED_ELSEWHERE = "the master has seen this code on another node"
LOCKED_AT_MASTER = "locked out at the master (failures on other nodes count too)"
LOCAL_ONLY = "master unreachable: decided on this node's state"
FAILED_CLOSED = "master unreachable: refused (fail closed)"

FORGET_ALL_AFTER = 1000
"""More configuration changes than this since the cache was filled: drop the whole cache."""
MAX_CACHED_USERS = 200_000
MAX_GRANTED = 10_000


@dataclass(frozen=True, slots=True)
class Attempt:
    user: str
    code: str
    client: str = "cli"
    """Who asked: ``cli``, a RADIUS client's name, or the SDK API key's name."""
    request_id: str = ""
    token: str | None = None
    """An SDK request's API key (checked before its body was read): checked again against this
    batch's configuration generation, so a key revoked a moment ago is refused."""


@dataclass(frozen=True, slots=True)
class _User:
    id: int
    enabled: bool
    methods: list[Method]
    has_backup: bool


@dataclass(slots=True)
class _State:
    user: UserState
    methods: dict[str, MethodState]


@dataclass(slots=True)
class _Pending:
    """State writes of one batch (SQLite), sent with ``executemany`` before the commit."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    counters: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Cache:
    generation: int = -1
    users: dict[str, _User | None] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    """user id -> name, to forget a user named in a change record only by id."""


class _Statements:
    def __init__(self, store: Store) -> None:
        e = store.engine
        us, ms, bc, m = t.user_state, t.method_state, t.backup_codes, t.methods
        uid, v = bindparam("uid", type_=Integer), bindparam("v", type_=Integer)
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
        mid = bindparam("mid", type_=String)
        self.claim_step = Prepared(
            e, update(ms).where(ms.c.method_id == mid, ms.c.last_step < v).values(last_step=v)
        )
        self.claim_counter = Prepared(
            e, update(ms).where(ms.c.method_id == mid, ms.c.counter < v).values(counter=v)
        )
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
        self.audit = Prepared(
            e,
            insert(t.audit).values({c: bindparam(c) for c in t.AUDIT_COLUMNS}),
        )


class Authenticator:
    """Not thread-safe: one thread calls ``run`` (the server's commit thread, or the CLI)."""

    def __init__(
        self,
        store: Store,
        policy: VerifyPolicy,
        keyring: KeyRing | None = None,
        remote: RemoteClaims | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.keyring = keyring or KeyRing()
        self.remote = remote
        self._cache = _Cache()
        self._sql = _Statements(store)
        self._exact = store.engine.dialect.name == "sqlite"
        self._states: dict[int, _State] = {}
        self.on_state: Callable[[list[tuple[str, str, int]]], None] | None = None
        """Told each committed batch's TOTP steps and HOTP counters (the farm's state push)."""
        self._conn: Connection | None = None
        self._data_version: int | None = None
        self._granted: set[Claim] = set()
        """Codes the master granted this node whose batch has not committed here yet. A batch
        that fails after the master's "ok" is decided again (the commit queue retries it one
        attempt at a time); asked again, the master would answer "used" — by this very node —
        and the user's good code would come back as a replay."""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        if not self._exact:
            with self.store.write() as conn:
                yield conn
            return
        if self._conn is None:
            self._conn = self.store.engine.connect().execution_options(write=True)
        try:
            with self.store.write_lock, self._conn.begin():
                yield self._conn
        except _Collected:
            self._states.clear()  # it held the tentative pass's state
            raise
        except BaseException:
            self._states.clear()
            self._data_version = None
            self.close()  # a connection that failed mid-transaction is not reused
            raise

    def _check_states(self, cur: Any) -> None:
        """Drop cached state if any other connection committed since our last transaction."""
        version = cur.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version or len(self._states) > MAX_CACHED_USERS:
            self._states.clear()
            self._data_version = version

    def run(
        self, attempts: list[Attempt], now: float | None = None
    ) -> list[Decision | OpenMfaError]:
        """Decide every attempt, commit once. An API-key failure comes back as the error.

        On a farm subordinate the batch is first decided without committing, to learn which
        claims it needs; they go to the master in one request, and the batch is decided again
        with the master's answers and committed."""
        now = time.time() if now is None else now
        remote = self.remote
        if remote is None:
            return self._run(attempts, now, None)
        wanted: list[Claim] = []
        try:
            return self._run(attempts, now, _Verdicts(collect=wanted))
        except _Collected:
            pass
        ask = [c for c in wanted if c not in self._granted]
        answers = dict(zip(ask, remote.claim_many(ask) if ask else [], strict=True))
        if len(self._granted) > MAX_GRANTED:  # only failed batches leave grants behind
            self._granted.clear()
        self._granted.update(
            c for c, a in answers.items() if a is ClaimResult.OK and c[1] != "failure"
        )
        known = {c: ClaimResult.OK if c in self._granted else answers[c] for c in wanted}
        results = self._run(attempts, now, _Verdicts(known=known))
        self._granted.difference_update(wanted)  # committed: a later copy is a replay again
        return results

    def _run(
        self, attempts: list[Attempt], now: float, verdicts: _Verdicts | None
    ) -> list[Decision | OpenMfaError]:
        results: list[Decision | OpenMfaError] = []
        audit: list[dict[str, Any]] = []
        node = self.store.node_name
        pending = _Pending() if self._exact else None
        with self._transaction() as conn:
            cur = dbapi_cursor(conn)
            if pending is not None:
                self._check_states(cur)
            generation = self._refresh(cur)
            for a in attempts:
                client = a.client
                if a.token is not None:
                    try:
                        api = self.keyring.check(conn, generation, a.token, now)
                        api.require("authenticate")
                    except OpenMfaError as exc:
                        results.append(exc)
                        continue
                    client = api.name
                d, locked, detail = self._one(cur, a, now, pending, verdicts)
                results.append(d)
                row = {
                    "at": now,
                    "node": node,
                    "action": "authenticate",
                    "user_name": a.user,
                    "client": client,
                    "method_id": d.method_id or "",
                    "result": "accepted" if d.accepted else "rejected",
                    "reason": d.reason.value,
                    "request_id": a.request_id,
                    "detail": detail,
                }
                audit.append(row)
                if locked:
                    audit.append(row | {"action": "lockout", "result": "ok"})
            if verdicts is not None and verdicts.collect:
                raise _Collected  # nothing of this pass is kept
            if pending is not None:
                self._flush(cur, pending)
            if audit:
                self._sql.audit.many(cur, audit)
            cur.close()
        if (
            self.on_state is not None
            and pending is not None
            and (pending.steps or pending.counters)
        ):
            self.on_state(
                [(r["mid"], "totp", r["v"]) for r in pending.steps]
                + [(r["mid"], "hotp", r["v"]) for r in pending.counters]
            )
        return results

    def _refresh(self, cur: Any) -> int:
        """Bring the cache to the current generation; returns it."""
        row = self._sql.generation.one(cur)
        generation = int(row[0]) if row else 0
        cache = self._cache
        if generation == cache.generation:
            return generation
        if cache.generation < 0 or generation - cache.generation > FORGET_ALL_AFTER:
            self._cache = _Cache(generation)
            return generation
        rows = self._sql.changes_since.all(cur, gen=cache.generation)
        if not rows or rows[0][0] != cache.generation + 1:
            # Records were pruned, or the data was replaced (a farm re-bootstrap): the gap
            # cannot be read, so nothing cached can be trusted.
            self._cache = _Cache(generation)
            return generation
        for _, kind, payload in rows:
            p = json.loads(payload) if isinstance(payload, str) else payload
            if kind.startswith("user."):
                self._forget(user_id=p.get("id"), name=p.get("name"))
            elif kind == "method.add":
                self._forget(user_id=p.get("user_id"))
            elif kind == "method.remove":
                for name, user in list(cache.users.items()):
                    if user is not None and any(m.id == p.get("id") for m in user.methods):
                        self._forget(name=name)
        cache.generation = generation
        return generation

    def _forget(self, *, user_id: int | None = None, name: str | None = None) -> None:
        cache = self._cache
        if user_id is not None and user_id in cache.names:
            cache.users.pop(cache.names.pop(user_id), None)
        if name is not None:
            cache.users.pop(name, None)

    def _flush(self, cur: Any, pending: _Pending) -> None:
        for statement, rows in (
            (self._sql.claim_step, pending.steps),
            (self._sql.claim_counter, pending.counters),
            (self._sql.set_state, pending.users),
        ):
            if rows:
                statement.many(cur, rows)
                if cur.rowcount != len(rows):
                    raise StaleState("authentication state changed under the cache; retrying")

    def _state(self, cur: Any, user_id: int, exact: bool) -> _State:
        if exact:
            cached = self._states.get(user_id)
            if cached is not None:
                return cached
        rows = self._sql.state.all(cur, uid=user_id)
        found = _State(
            UserState(rows[0][0], rows[0][1], rows[0][2]) if rows else UserState(),
            {r[3]: MethodState(r[4], r[5]) for r in rows if r[3] is not None},
        )
        if exact:
            self._states[user_id] = found
        return found

    def _one(
        self,
        cur: Any,
        a: Attempt,
        now: float,
        pending: _Pending | None,
        verdicts: _Verdicts | None = None,
    ) -> tuple[Decision, bool, str]:
        """Decide one attempt and store its state; returns (decision, newly locked, detail)."""
        user = self._user(cur, a.user)
        if user is None:
            return Decision(False, Reason.UNKNOWN_USER), False, ""
        if not user.enabled:
            return Decision(False, Reason.DISABLED), False, ""
        cached = self._state(cur, user.id, pending is not None)
        state, method_states = cached.user, cached.methods
        unused: dict[str, list[tuple[int, bytes]]] = {}
        if user.has_backup:
            for code_id, method_id, code_hash in self._sql.backup.all(cur, uid=user.id):
                unused.setdefault(method_id, []).append((code_id, bytes(code_hash)))
        out = decide(
            a.code,
            now,
            state=state,
            methods=user.methods,
            method_states=method_states,
            unused_backup_codes=unused,
            pepper=self.store.box.pepper,
            policy=self.policy,
        )
        detail = ""
        if out.decision.accepted and self.remote is not None:
            verdict = self._claim_remote(user, out, unused, verdicts)
            if verdict is ClaimResult.UNREACHABLE and self.remote.fail_closed:
                d = Decision(False, Reason.MASTER_UNREACHABLE, out.decision.method_id)
                return d, False, FAILED_CLOSED  # not the user's fault: no failure counted
            if verdict is ClaimResult.LOCKED:
                return (
                    Decision(False, Reason.LOCKED, out.decision.method_id),
                    False,
                    LOCKED_AT_MASTER,
                )
            detail = {
                ClaimResult.OK: CLAIMED,
                ClaimResult.USED: USED_ELSEWHERE,
                ClaimResult.UNREACHABLE: LOCAL_ONLY,
            }[verdict]
            if verdict is ClaimResult.USED:
                out = Outcome(
                    Decision(False, Reason.REPLAY, out.decision.method_id),
                    after_failure(state, self.policy.lockout, now),
                )
        if out.decision.accepted and not self._claim(cur, user, out, now, pending):
            # Another writer used this step/counter/code between our read and write.
            out = Outcome(
                Decision(False, Reason.REPLAY, out.decision.method_id),
                after_failure(state, self.policy.lockout, now),
            )
        if (
            self.remote is not None
            and not out.decision.accepted
            and out.user_state.failures > state.failures
        ):
            # Count the failure at the master too, so failures on every node lock the user.
            # Its answer does not change this (already negative) decision.
            self._claim_failure(user.id, out.user_state.failures, verdicts)
        if out.method_state is not None and out.decision.accepted:
            method_states[out.method_state[0]] = out.method_state[1]
        if out.user_state != state:
            s = out.user_state
            cached.user = s
            row = {"uid": user.id, "f": s.failures, "lu": s.locked_until, "bu": s.bypass_until}
            if pending is not None:
                pending.users.append(row)
            else:
                self._sql.set_state.run(cur, **row)
        return out.decision, out.newly_locked, detail

    def _claim_failure(self, user_id: int, failures: int, verdicts: _Verdicts | None) -> None:
        assert self.remote is not None
        claim: Claim = (str(user_id), "failure", failures)
        if verdicts is not None and verdicts.collect is not None:
            verdicts.collect.append(claim)
        elif verdicts is None or claim not in verdicts.known:
            self.remote.claim(*claim)

    def _claim_remote(
        self,
        user: _User,
        out: Outcome,
        unused: dict[str, list[tuple[int, bytes]]],
        verdicts: _Verdicts | None,
    ) -> ClaimResult:
        """Claim at the farm's master what this acceptance uses up (nothing: OK)."""
        assert self.remote is not None
        claim: Claim
        if out.method_state is not None:
            method_id, new = out.method_state
            kind = next(m.kind for m in user.methods if m.id == method_id)
            if kind == MethodKind.TOTP:
                claim = (method_id, "totp", new.last_step)
            else:
                claim = (method_id, "hotp", new.counter)
        elif out.backup_code_used is not None and out.decision.method_id is not None:
            method_id = out.decision.method_id
            code_hash = next(h for i, h in unused[method_id] if i == out.backup_code_used)
            claim = (method_id, "backup", code_hash.hex())
        else:
            return ClaimResult.OK  # a bypass uses nothing farm-wide
        if verdicts is not None:
            if verdicts.collect is not None:
                verdicts.collect.append(claim)
                return ClaimResult.OK  # tentative: this pass is rolled back
            known = verdicts.known.get(claim)
            if known is not None:
                return known
        return self.remote.claim(*claim)

    def _claim(
        self, cur: Any, user: _User, out: Outcome, now: float, pending: _Pending | None
    ) -> bool:
        """Store what the acceptance used up; False if someone else used it first."""
        if out.method_state is not None:
            method_id, new = out.method_state
            kind = next(m.kind for m in user.methods if m.id == method_id)
            if kind == MethodKind.TOTP:
                row, statement = {"mid": method_id, "v": new.last_step}, self._sql.claim_step
                later = pending.steps if pending is not None else None
            else:
                row, statement = {"mid": method_id, "v": new.counter}, self._sql.claim_counter
                later = pending.counters if pending is not None else None
            if later is not None:
                later.append(row)  # the cache is exact: the claim will apply (checked in _flush)
                return True
            return statement.run(cur, **row) == 1
        if out.backup_code_used is not None:
            return self._sql.claim_backup.run(cur, bid=out.backup_code_used, now=now) == 1
        return True

    def _user(self, cur: Any, name: str) -> _User | None:
        cache = self._cache
        if name in cache.users:
            return cache.users[name]
        row = self._sql.user.one(cur, name=name)
        user: _User | None = None
        if row is not None:
            user_id, enabled = int(row[0]), bool(row[1])
            methods: list[Method] = []
            for method_id, kind_text, sealed, digits, period, algorithm in self._sql.methods.all(
                cur, uid=user_id
            ):
                kind = MethodKind(kind_text)
                if kind == MethodKind.BACKUP_CODES:
                    methods.append(Method(method_id, kind))
                else:
                    key = self.store.box.open(bytes(sealed), method_id)
                    methods.append(Method(method_id, kind, key, digits, period, algorithm))
            has_backup = any(m.kind == MethodKind.BACKUP_CODES for m in methods)
            user = _User(user_id, enabled, methods, has_backup)
            cache.names[user_id] = name
        if len(cache.users) >= MAX_CACHED_USERS:
            self._cache = cache = _Cache(cache.generation)
        cache.users[name] = user
        return user
