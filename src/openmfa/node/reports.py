"""Reports over the audit log: the console's dashboard (the last 24 hours) and month reports
(active people, sign-ins by channel and result, the method mix, failures by reason, how long
pushes took to approve, fraud reports, lockouts).

Rules owned here:
- the sign-in path pays nothing: audit rows are written as before, and the counts are folded
  from the rows after a mark (their ids) in grouped queries — when a report is asked for, and
  once a minute in the background (``ReportFolder``), never per request;
- on PostgreSQL, where a transaction still open may hold a lower id than one committed, the rows
  of the last ``SETTLE`` seconds are counted for each answer but folded only later;
- the counts are hourly and live in this process: derived data, folded again from the audit
  log when the process starts (nothing new in the data file, no data format); so a report over
  a million records reads a few thousand counts, not the records;
- a month's active people are counted without keeping names: a month still being written keeps
  a set of keyed hashes of the names (the key made at start, never stored); a finished month
  keeps only its count;
- what the audit log no longer holds is not reported: counts of hours before its oldest record
  (``[audit] retain_days``) are dropped at the next fold;
- months and days are UTC.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Connection, Integer, cast, func, select

from ..contract import Count, Dashboard, MonthReport, PushTimes
from ..errors import MalformedRequest
from ..store import tables as t
from ..store.database import Store
from .audit import channel_of
from .push_requests import push_id_of

log = logging.getLogger("openmfa.reports")
HOUR = 3600
DAY = 86400
DECISION = "authenticate"
"""A second factor decided (every channel writes it): what sign-ins count."""
COUNTED = (DECISION, "push.answer", "fraud.report", "lockout")
PUSH_BUCKETS = (5, 10, 20, 30, 60)
"""Upper bounds (seconds) of the push approval time's buckets; the last is "over 60 s"."""
FOLD_EVERY = 60.0
SETTLE = 10.0
BATCH = 500

_Key = tuple[int, str, str, str, str, str]
"""(hour, action, result, reason, client, method kind)."""


def month_of(at: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(at))


def month_span(month: str) -> tuple[float, float]:
    """(first second, first second of the next month) of ``YYYY-MM``; BadRequest otherwise."""
    try:
        year, mon = (int(x) for x in month.split("-"))
        if len(month) != 7 or not (1970 <= year <= 9999 and 1 <= mon <= 12):
            raise ValueError(month)
    except ValueError:
        said = f"month must be YYYY-MM, like 2026-12 (got {month[:16]!r})"
        raise MalformedRequest(said) from None
    start = calendar.timegm((year, mon, 1, 0, 0, 0))
    nxt = calendar.timegm((year + mon // 12, mon % 12 + 1, 1, 0, 0, 0))
    return float(start), float(nxt)


@dataclass
class _Counts:
    mark: int = 0
    hours: Counter[_Key] = field(default_factory=Counter)
    people: dict[str, set[bytes]] = field(default_factory=dict)
    """Months still being written: keyed hashes of the people with an accepted decision."""
    active: dict[str, int] = field(default_factory=dict)
    """Finished months: how many people."""
    push: dict[str, list[float]] = field(default_factory=dict)
    """A month's approved pushes' times (seconds), as counts per bucket (``PUSH_BUCKETS``)."""
    push_seconds: dict[str, list[float]] = field(default_factory=dict)
    """A month's approval times, kept for the median (at most ``_KEEP_TIMES`` each)."""
    oldest: float = 0.0


_KEEP_TIMES = 20_000


@dataclass
class _Delta:
    hours: list[tuple[_Key, int]]
    people: dict[str, set[bytes]]
    pushes: list[tuple[str, float]]
    """(month, seconds) of each approved push."""


class Reports:
    def __init__(self, store: Store, clock: object = time.time) -> None:
        self.store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(16)
        self._c = _Counts()

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    # -- folding -----------------------------------------------------------------------------

    def fold(self) -> int:
        """Count the audit rows written since the last fold; how many were folded."""
        with self._lock:
            return self._fold()

    def _fold(self) -> int:
        c = self._c
        with self.store.read() as conn:
            top = self._top(conn)
            oldest = conn.scalar(select(func.min(t.audit.c.at)))
            delta = self._read(conn, c.mark, top) if top > c.mark else None
        if delta is not None:
            for key, n in delta.hours:
                c.hours[key] += n
            for month, names in delta.people.items():
                c.people.setdefault(month, set()).update(names)
            for month, seconds in delta.pushes:
                self._push(month, seconds)
            c.mark = top
        self._finish_months()
        self._forget_before(oldest)
        return sum(n for _, n in delta.hours) if delta is not None else 0

    def _read(self, conn: Connection, after: int, upto: int | None) -> _Delta:
        """The counts of the rows after ``after`` up to ``upto`` (None: all)."""
        a, m = t.audit, t.methods
        span = a.c.id > after if upto is None else (a.c.id > after) & (a.c.id <= upto)
        hour = self._hour(a.c.at)
        kind = func.coalesce(m.c.kind, "")
        grouped = conn.execute(
            select(hour, a.c.action, a.c.result, a.c.reason, a.c.client, kind, func.count())
            .select_from(a.outerjoin(m, m.c.id == a.c.method_id))
            .where(span, a.c.action.in_(COUNTED))
            .group_by(hour, a.c.action, a.c.result, a.c.reason, a.c.client, kind)
        ).all()
        accepted = (span, a.c.action == DECISION, a.c.result == "accepted")
        first, last = conn.execute(
            select(func.min(a.c.at), func.max(a.c.at)).where(*accepted)
        ).one()
        people: dict[str, set[bytes]] = {}
        for month in _months(first, last):
            start, end = month_span(month)
            names = conn.scalars(
                select(a.c.user_name).where(*accepted, a.c.at >= start, a.c.at < end).distinct()
            )
            people[month] = {self._hash(n) for n in names}
        answers = conn.execute(
            select(a.c.at, a.c.detail).where(
                span, a.c.action == "push.answer", a.c.result == "accepted"
            )
        ).all()
        asked = self._asked(conn, [push_id_of(d) for _, d in answers])
        pushes = [
            (month_of(at), max(0.0, at - asked[push_id_of(detail)]))
            for at, detail in answers
            if push_id_of(detail) in asked
        ]
        return _Delta(
            [((int(h), ac, r, why, cl, k or "removed"), n) for h, ac, r, why, cl, k, n in grouped],
            people,
            pushes,
        )

    def _view(self) -> tuple[list[tuple[_Key, int]], dict[str, int]]:
        """Fold, then every hour's counts and each month's people, with (on PostgreSQL) the rows
        still settling counted for this answer only."""
        with self._lock:
            self._fold()
            c = self._c
            hours = list(c.hours.items())
            people = dict(c.active)
            for month, seen in c.people.items():
                people[month] = people.get(month, 0) + len(seen)
            if self.store.is_sqlite:
                return hours, people
            with self.store.read() as conn:
                tail = self._read(conn, c.mark, None)
            hours.extend(tail.hours)
            for month, names in tail.people.items():
                new = names - c.people.get(month, set())
                people[month] = people.get(month, 0) + len(new)
            return hours, people

    def _hour(self, at: ColumnElement[float]) -> ColumnElement[int]:
        if self.store.is_sqlite:
            return cast(at / HOUR, Integer)  # SQLite truncates
        return cast(func.floor(at / HOUR), Integer)  # PostgreSQL would round

    def _top(self, conn: Connection) -> int:
        """The last row to fold. SQLite writes one transaction at a time, so every id up to the
        highest is there; on PostgreSQL a transaction still open may hold a lower id than one
        committed, so the rows of the last ``SETTLE`` seconds wait for a later fold."""
        a = t.audit
        if self.store.is_sqlite:
            return int(conn.scalar(select(func.max(a.c.id))) or 0)
        recent = conn.scalar(
            select(a.c.id).where(a.c.at >= self._now() - SETTLE).order_by(a.c.id).limit(1)
        )
        if recent is not None:
            return int(recent) - 1
        return int(conn.scalar(select(func.max(a.c.id))) or 0)

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
        buckets = self._c.push.setdefault(month, [0.0] * (len(PUSH_BUCKETS) + 1))
        buckets[next((i for i, b in enumerate(PUSH_BUCKETS) if seconds <= b), -1)] += 1
        kept = self._c.push_seconds.setdefault(month, [])
        if len(kept) < _KEEP_TIMES:
            kept.append(seconds)

    def _finish_months(self) -> None:
        """Months before the current one keep only their count of people."""
        current = month_of(self._now())
        for month in [m for m in self._c.people if m < current]:
            self._c.active[month] = self._c.active.get(month, 0) + len(self._c.people.pop(month))

    def _forget_before(self, oldest: float | None) -> None:
        c = self._c
        if oldest is None:  # an empty log: nothing to report
            if c.hours or c.active or c.people:
                self._c = _Counts(mark=c.mark)
            return
        if oldest <= c.oldest:
            return
        c.oldest = oldest
        first_hour = int(oldest // HOUR)
        for key in [k for k in c.hours if k[0] < first_hour]:
            del c.hours[key]
        first_month = month_of(oldest)
        for table in (c.people, c.active, c.push, c.push_seconds):
            for month in [m for m in table if m < first_month]:
                del table[month]

    # -- reading -----------------------------------------------------------------------------

    def dashboard(self) -> Dashboard:
        now = self._now()
        since_hour = int(now // HOUR) - 23
        every, _ = self._view()
        hours = [(k, n) for k, n in every if k[0] >= since_hour]
        month_ago = int(now // HOUR) - 30 * 24
        fraud_30d = sum(n for k, n in every if k[0] > month_ago and k[1] == "fraud.report")
        scopes = self._scopes({k[4] for k, _ in hours})
        s = t.user_state
        with self.store.read() as conn:
            locked = conn.scalar(select(func.count()).where(s.c.locked_until > now)) or 0
            records = conn.scalar(select(func.count()).select_from(t.audit)) or 0
        return Dashboard(
            since=float(since_hour * HOUR),
            sign_ins=_by_channel(hours, scopes),
            failures=_failures(hours),
            locked_users=int(locked),
            fraud_reports=sum(n for k, n in hours if k[1] == "fraud.report"),
            fraud_reports_30d=fraud_30d,
            lockouts=sum(n for k, n in hours if k[1] == "lockout"),
            records=int(records),
        )

    def month(self, month: str) -> MonthReport:
        start, end = month_span(month)
        first, last = int(start // HOUR), int(end // HOUR)
        every, people = self._view()
        hours = [(k, n) for k, n in every if first <= k[0] < last]
        with self._lock:
            buckets = list(self._c.push.get(month, [0.0] * (len(PUSH_BUCKETS) + 1)))
            times = sorted(self._c.push_seconds.get(month, []))
        months = sorted({month_of(k[0] * HOUR) for k, _ in every}, reverse=True)
        scopes = self._scopes({k[4] for k, _ in hours})
        decided = [(k, n) for k, n in hours if k[1] == DECISION and k[3] != "pending"]
        kinds: Counter[str] = Counter()
        days: Counter[tuple[str, str]] = Counter()
        for k, n in decided:
            if k[2] == "accepted":
                kinds[k[5]] += n
            day = time.strftime("%Y-%m-%d", time.gmtime(k[0] * HOUR))
            days[(day, k[2])] += n
        return MonthReport(
            month=month,
            active_users=people.get(month, 0),
            sign_ins=_by_channel(hours, scopes),
            methods=[Count(key=k, count=n) for k, n in kinds.most_common()],
            failures=_failures(hours),
            days=[Count(key=d, result=r, count=n) for (d, r), n in sorted(days.items())],
            push=_push_times(buckets, times),
            fraud_reports=sum(n for k, n in hours if k[1] == "fraud.report"),
            lockouts=sum(n for k, n in hours if k[1] == "lockout"),
            months=months,
        )

    def _scopes(self, clients: Iterable[str]) -> dict[str, str]:
        names = {_key_of(c) for c in clients if c and not c.startswith("radius:") and c != "cli"}
        if not names:
            return {}
        k = t.api_keys
        with self.store.read() as conn:
            return {n: s for n, s in conn.execute(select(k.c.name, k.c.scope)).all() if n in names}


def _key_of(client: str) -> str:
    """The API key's name of an audit row's ``client`` (an operator acts as ``KEY/NAME``)."""
    return client.split("/", 1)[0]


def _months(first: float | None, last: float | None) -> list[str]:
    if first is None or last is None:
        return []
    months, at = [], first
    while month_of(at) <= month_of(last):
        months.append(month_of(at))
        at = month_span(month_of(at))[1]
    return months


def _by_channel(hours: list[tuple[_Key, int]], scopes: dict[str, str]) -> list[Count]:
    by: Counter[tuple[str, str]] = Counter()
    for k, n in hours:
        if k[1] == DECISION and k[3] != "pending":
            by[(channel_of(k[4], scopes.get(_key_of(k[4]), "")) or "application", k[2])] += n
    return [Count(key=ch, result=r, count=n) for (ch, r), n in sorted(by.items())]


def _failures(hours: list[tuple[_Key, int]]) -> list[Count]:
    by: Counter[str] = Counter()
    for k, n in hours:
        if k[1] == DECISION and k[2] != "accepted" and k[3] != "pending":
            by[k[3] or "other"] += n
    return [Count(key=r, count=n) for r, n in by.most_common()]


def _push_times(buckets: list[float], times: list[float]) -> PushTimes:
    labels = [f"{lo}-{hi} s" for lo, hi in zip((0, *PUSH_BUCKETS), PUSH_BUCKETS, strict=False)]
    labels.append(f"over {PUSH_BUCKETS[-1]} s")
    approved = int(sum(buckets))

    def at(q: float) -> float | None:
        return round(times[min(len(times) - 1, int(q * len(times)))], 1) if times else None

    return PushTimes(
        approved=approved,
        median=at(0.5),
        p90=at(0.9),
        buckets=[Count(key=label, count=int(n)) for label, n in zip(labels, buckets, strict=True)],
    )


class ReportFolder:
    """Folds the audit log's new rows once a minute in a thread of its own, so a report seldom
    waits for more than a minute's rows; the first fold (the whole log) starts at once."""

    def __init__(self, reports: Reports, every: float = FOLD_EVERY) -> None:
        self.reports = reports
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="openmfa-reports", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.reports.fold()
            except Exception:  # the data file went away, a database restart: said, tried again
                log.exception("could not fold the audit log into the reports' counts")
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
