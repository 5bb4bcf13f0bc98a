"""The counts reports are made from (``node.reports``), folded from the audit log.

Rules owned here:
- the sign-in path pays nothing: audit rows are written as before, and the counts are folded
  from the rows after a mark (their ids) in grouped queries — when a report is asked for, and
  once a minute in the background (``node.reports.ReportFolder``) from the first report on,
  never per request (a node nobody asks for reports folds nothing);
- a sign-in's second factor is decided by an ``authenticate`` row, or for a push by the phone's
  answer (``push.answer``: approved, declined, wrong number, fraud) or its closing
  (``push.close``), whose client is the one that asked for the push (``push_parts``); the
  ``authenticate`` row that opened the push (reason ``pending``) is no decision;
- on PostgreSQL a transaction still open may hold a lower id than one committed: the ids missing
  below the highest folded are looked for again at each fold for ``GAP_SECONDS`` (SQLite writes
  one transaction at a time, so no id is ever missing there);
- the counts are hourly and live in this process: derived data, folded again from the audit
  log when the process starts (nothing new in the data file, no data format);
- a month's people are counted without keeping names: keyed hashes (the key made at start,
  never stored), kept until ``GRACE_SECONDS`` after the month's end (rows relayed late by a
  subordinate still count once), then only their number;
- counts of hours before the audit log's oldest record (``[audit] retain_days``) are dropped;
- months and days are UTC.
"""

from __future__ import annotations

import calendar
import hashlib
import random
import re
import secrets
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Connection, Integer, case, cast, func, or_, select

from ..contract import MONTH_PATTERN
from ..errors import MalformedRequest
from ..store import tables as t
from ..store.database import Store
from .push_requests import push_parts

HOUR = 3600
DECISION = "authenticate"
PUSH_DECIDED = ("approved", "declined", "wrong_number", "fraud")
"""The reasons of a ``push.answer`` that decide a sign-in (not a refused answer: a replay...)."""
COUNTED = (DECISION, "fraud.report", "lockout")
PUSH_BUCKETS = (5, 10, 20, 30, 60)
"""Upper bounds (seconds) of the push approval time's buckets; the last is "over 60 s"."""
KEEP_TIMES = 20_000
"""Approval times kept per month for the median (a uniform sample of them all)."""
GAP_SECONDS = 600.0
GRACE_SECONDS = 3 * 86400.0
BATCH = 500
_MONTH_RE = re.compile(MONTH_PATTERN)

Key = tuple[int, str, str, str, str, str]
"""(hour, action, result, reason, client, method kind)."""


def month_of(at: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(at))


def month_span(month: str) -> tuple[float, float]:
    """(first second, first second of the next month) of ``YYYY-MM``; MalformedRequest for any
    other text."""
    if not _MONTH_RE.fullmatch(month):
        said = f"month must be YYYY-MM, like 2026-12 (got {month[:16]!r})"
        raise MalformedRequest(said)
    year, mon = int(month[:4]), int(month[5:])
    start = calendar.timegm((year, mon, 1, 0, 0, 0))
    nxt = calendar.timegm((year + mon // 12, mon % 12 + 1, 1, 0, 0, 0))
    return float(start), float(nxt)


@dataclass
class Snapshot:
    """What a report reads, copied under the lock."""

    hours: list[tuple[Key, int]]
    people: dict[str, int]
    push: dict[str, list[int]]
    push_times: dict[str, list[float]]


@dataclass
class _Delta:
    hours: list[tuple[Key, int]]
    people: dict[str, set[bytes]]
    pushes: list[tuple[str, float]]
    """(month, seconds) of each approved push."""


@dataclass
class _Counts:
    mark: int = 0
    hours: Counter[Key] = field(default_factory=Counter)
    people: dict[str, set[bytes]] = field(default_factory=dict)
    active: dict[str, int] = field(default_factory=dict)
    push: dict[str, list[int]] = field(default_factory=dict)
    push_times: dict[str, list[float]] = field(default_factory=dict)
    gaps: dict[int, float] = field(default_factory=dict)
    """Ids missing below the mark (PostgreSQL), and since when."""
    oldest: float = 0.0


class AuditCounts:
    def __init__(self, store: Store, clock: object = time.time) -> None:
        self.store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(16)
        self._sample = random.Random()
        self._c = _Counts()

    def now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def fold(self) -> int:
        """Count the audit rows written since the last fold; how many rows that was."""
        with self._lock:
            return self._fold()

    def snapshot(self) -> Snapshot:
        with self._lock:
            self._fold()
            c = self._c
            people = dict(c.active)
            for month, seen in c.people.items():
                people[month] = people.get(month, 0) + len(seen)
            return Snapshot(
                list(c.hours.items()),
                people,
                {m: list(b) for m, b in c.push.items()},
                {m: list(x) for m, x in c.push_times.items()},
            )

    def _fold(self) -> int:
        c, a = self._c, t.audit
        folded = 0
        with self.store.read() as conn:
            top = int(conn.scalar(select(func.max(a.c.id))) or 0)
            oldest = conn.scalar(select(func.min(a.c.at)))
            deltas = []
            if c.gaps:  # ids an open transaction held at an earlier fold: those now there
                came = list(conn.scalars(select(a.c.id).where(a.c.id.in_(list(c.gaps)[:BATCH]))))
                for i in came:
                    del c.gaps[i]
                if came:
                    deltas.append(self._read(conn, a.c.id.in_(came)))
            if top > c.mark:
                deltas.append(self._read(conn, (a.c.id > c.mark) & (a.c.id <= top)))
                if not self.store.is_sqlite:
                    self._note_gaps(conn, c.mark, top)
        for delta in deltas:
            folded += self._apply(delta)
        c.mark = max(c.mark, top)
        self._finish_months()
        self._forget_before(oldest)
        return folded

    def _note_gaps(self, conn: Connection, after: int, upto: int) -> None:
        a, now, gaps = t.audit, self.now(), self._c.gaps
        held = int(conn.scalar(select(func.count()).where(a.c.id > after, a.c.id <= upto)) or 0)
        if held < upto - after:
            ids = conn.scalars(
                select(a.c.id).where(a.c.id > after, a.c.id <= upto).order_by(a.c.id)
            )
            expected = after + 1
            for i in ids:
                for missing in range(expected, min(i, expected + 10_000)):
                    gaps[missing] = now
                expected = i + 1
        for i in [i for i, since in gaps.items() if now - since > GAP_SECONDS]:
            del gaps[i]  # a transaction rolled back: that id never comes

    def _apply(self, delta: _Delta) -> int:
        c = self._c
        for key, n in delta.hours:
            c.hours[key] += n
        for month, names in delta.people.items():
            c.people.setdefault(month, set()).update(names)
        for month, seconds in delta.pushes:
            self._push(month, seconds)
        return sum(n for _, n in delta.hours)

    def _read(self, conn: Connection, where: ColumnElement[bool]) -> _Delta:
        a, m = t.audit, t.methods
        hour = self._hour(a.c.at)
        kind = case((a.c.method_id == "", "none"), else_=func.coalesce(m.c.kind, "removed"))
        grouped = conn.execute(
            select(hour, a.c.action, a.c.result, a.c.reason, a.c.client, kind, func.count())
            .select_from(a.outerjoin(m, m.c.id == a.c.method_id))
            .where(where, a.c.action.in_(COUNTED))
            .where(or_(a.c.action != DECISION, a.c.reason != "pending"))  # a push opened
            .group_by(hour, a.c.action, a.c.result, a.c.reason, a.c.client, kind)
        ).all()
        hours = [(_key(int(h), ac, r, why, cl, k), int(n)) for h, ac, r, why, cl, k, n in grouped]
        # A second factor that was no method (a bypass, a remembered browser) is no person's
        # "signed in with a second factor".
        accepted = (where, a.c.action == DECISION, a.c.result == "accepted", a.c.method_id != "")
        people: dict[str, set[bytes]] = {}
        first, last = conn.execute(
            select(func.min(a.c.at), func.max(a.c.at)).where(*accepted)
        ).one()
        for month in _months(first, last):
            start, end = month_span(month)
            names = conn.scalars(
                select(a.c.user_name).where(*accepted, a.c.at >= start, a.c.at < end).distinct()
            )
            people[month] = {self._hash(n) for n in names}
        pushes = self._pushes(conn, where, hours, people)
        return _Delta(hours, people, pushes)

    def _pushes(
        self,
        conn: Connection,
        where: ColumnElement[bool],
        hours: list[tuple[Key, int]],
        people: dict[str, set[bytes]],
    ) -> list[tuple[str, float]]:
        """Push decisions (added to ``hours`` and ``people``); the approved ones' times."""
        a = t.audit
        rows = conn.execute(
            select(a.c.at, a.c.action, a.c.result, a.c.reason, a.c.user_name, a.c.detail).where(
                where,
                or_(
                    (a.c.action == "push.answer") & a.c.reason.in_(PUSH_DECIDED),
                    a.c.action == "push.close",
                ),
            )
        ).all()
        by: Counter[Key] = Counter()
        approved: list[tuple[float, str]] = []
        for at, action, result, reason, user, detail in rows:
            push_id, client = push_parts(detail)
            ok = action == "push.answer" and result == "accepted"
            by[
                _key(
                    int(at // HOUR),
                    DECISION,
                    "accepted" if ok else "rejected",
                    reason,
                    client,
                    "push",
                )
            ] += 1
            if ok:
                people.setdefault(month_of(at), set()).add(self._hash(user))
                approved.append((at, push_id))
        hours.extend(by.items())
        asked = self._asked(conn, [p for _, p in approved])
        return [(month_of(at), max(0.0, at - asked[p])) for at, p in approved if p in asked]

    def _hour(self, at: ColumnElement[float]) -> ColumnElement[int]:
        if self.store.is_sqlite:
            return cast(at / HOUR, Integer)  # SQLite truncates
        return cast(func.floor(at / HOUR), Integer)  # PostgreSQL would round

    @staticmethod
    def _asked(conn: Connection, ids: list[str]) -> dict[str, float]:
        r = t.push_requests
        found: dict[str, float] = {}
        wanted = [i for i in ids if i]
        for i in range(0, len(wanted), BATCH):
            rows = conn.execute(
                select(r.c.id, r.c.created_at).where(r.c.id.in_(wanted[i : i + BATCH]))
            )
            found.update((pid, float(at)) for pid, at in rows)
        return found

    def _hash(self, name: str) -> bytes:
        return hashlib.blake2b(name.encode(), key=self._key, digest_size=8).digest()

    def _push(self, month: str, seconds: float) -> None:
        buckets = self._c.push.setdefault(month, [0] * (len(PUSH_BUCKETS) + 1))
        buckets[next((i for i, b in enumerate(PUSH_BUCKETS) if seconds <= b), -1)] += 1
        kept, seen = self._c.push_times.setdefault(month, []), sum(buckets)
        if len(kept) < KEEP_TIMES:
            kept.append(seconds)
        else:  # a uniform sample of every time (reservoir sampling)
            j = self._sample.randrange(seen)
            if j < KEEP_TIMES:
                kept[j] = seconds

    def _finish_months(self) -> None:
        """A month ``GRACE_SECONDS`` past its end keeps only its number of people."""
        now = self.now()
        for month in [m for m in self._c.people if month_span(m)[1] + GRACE_SECONDS < now]:
            self._c.active[month] = self._c.active.get(month, 0) + len(self._c.people.pop(month))

    def _forget_before(self, oldest: float | None) -> None:
        c = self._c
        if oldest is None:  # an empty log: nothing to report
            if c.hours or c.active or c.people:
                self._c = _Counts(mark=c.mark, gaps=c.gaps)
            return
        if oldest <= c.oldest:
            return
        c.oldest = oldest
        first_hour = int(oldest // HOUR)
        for key in [k for k in c.hours if k[0] < first_hour]:
            del c.hours[key]
        first_month = month_of(oldest)
        for table in (c.people, c.active, c.push, c.push_times):
            for month in [m for m in table if m < first_month]:
                del table[month]


def _key(hour: int, action: str, result: str, reason: str, client: str, kind: str) -> Key:
    """An hour's key, its strings once in memory however many hours name them."""
    i = sys.intern
    return (hour, i(action), i(result), i(reason), i(client), i(kind))


def _months(first: float | None, last: float | None) -> list[str]:
    if first is None or last is None:
        return []
    months, at = [], first
    while month_of(at) <= month_of(last):
        months.append(month_of(at))
        at = month_span(month_of(at))[1]
    return months
