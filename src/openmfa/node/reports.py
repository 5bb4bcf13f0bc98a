"""Reports over the audit log: the console's dashboard (the last 24 hours, whole hours) and
month reports (people who signed in with a second factor, sign-ins by channel and result, the
method mix, refusals by reason, how long pushes took to approve, fraud reports, lockouts), read
from the hourly counts ``node.report_counts`` folds off the sign-in path; so a report over a
million records reads a few thousand counts, not the records."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable

from sqlalchemy import func, select

from ..contract import Count, Dashboard, MonthReport, PushTimes
from ..store import tables as t
from ..store.database import Store
from .apikeys import key_of
from .audit import channel_of
from .report_counts import (
    DECISION,
    HOUR,
    PUSH_BUCKETS,
    AuditCounts,
    Key,
    month_of,
    month_span,
)

log = logging.getLogger("openmfa.reports")
FOLD_EVERY = 60.0


class Reports:
    def __init__(self, store: Store, clock: object = time.time) -> None:
        self.store = store
        self.counts = AuditCounts(store, clock)
        self.asked = threading.Event()
        """Set by the first report: from then on the background folder keeps the counts
        fresh (a node nobody asks for reports spends nothing on them)."""

    def fold(self) -> int:
        return self.counts.fold()

    def dashboard(self) -> Dashboard:
        self.asked.set()
        now = self.counts.now()
        since_hour = int(now // HOUR) - 23
        every = self.counts.snapshot().hours
        hours = [(k, n) for k, n in every if k[0] >= since_hour]
        month_ago = int(now // HOUR) - 30 * 24
        fraud_30d = sum(n for k, n in every if k[0] > month_ago and k[1] == "fraud.report")
        s = t.user_state
        with self.store.read() as conn:
            locked = conn.scalar(select(func.count()).where(s.c.locked_until > now)) or 0
            records = conn.scalar(select(func.count()).select_from(t.audit)) or 0
        return Dashboard(
            since=float(since_hour * HOUR),
            sign_ins=_by_channel(hours, self._scopes(k[4] for k, _ in hours)),
            failures=_failures(hours),
            locked_users=int(locked),
            fraud_reports=sum(n for k, n in hours if k[1] == "fraud.report"),
            fraud_reports_30d=fraud_30d,
            lockouts=sum(n for k, n in hours if k[1] == "lockout"),
            records=int(records),
        )

    def month(self, month: str) -> MonthReport:
        start, end = month_span(month)
        self.asked.set()
        first, last = int(start // HOUR), int(end // HOUR)
        snap = self.counts.snapshot()
        hours = [(k, n) for k, n in snap.hours if first <= k[0] < last]
        decided = [(k, n) for k, n in hours if k[1] == DECISION]
        kinds: Counter[str] = Counter()
        days: Counter[tuple[str, str]] = Counter()
        for k, n in decided:
            if k[2] == "accepted":
                kinds[k[5]] += n
            days[(time.strftime("%Y-%m-%d", time.gmtime(k[0] * HOUR)), k[2])] += n
        buckets = snap.push.get(month, [0] * (len(PUSH_BUCKETS) + 1))
        return MonthReport(
            month=month,
            active_users=snap.people.get(month, 0),
            sign_ins=_by_channel(hours, self._scopes(k[4] for k, _ in hours)),
            methods=[Count(key=k, count=n) for k, n in kinds.most_common()],
            failures=_failures(hours),
            days=[Count(key=d, result=r, count=n) for (d, r), n in sorted(days.items())],
            push=_push_times(buckets, sorted(snap.push_times.get(month, []))),
            fraud_reports=sum(n for k, n in hours if k[1] == "fraud.report"),
            lockouts=sum(n for k, n in hours if k[1] == "lockout"),
            months=sorted({month_of(k[0] * HOUR) for k, _ in snap.hours}, reverse=True),
        )

    def _scopes(self, clients: Iterable[str]) -> dict[str, str]:
        names = {key_of(c) for c in clients if c and not c.startswith("radius:") and c != "cli"}
        if not names:
            return {}
        k = t.api_keys
        with self.store.read() as conn:
            return {n: s for n, s in conn.execute(select(k.c.name, k.c.scope)).all() if n in names}


def _by_channel(hours: list[tuple[Key, int]], scopes: dict[str, str]) -> list[Count]:
    by: Counter[tuple[str, str]] = Counter()
    for k, n in hours:
        if k[1] == DECISION:
            by[(channel_of(k[4], scopes.get(key_of(k[4]), "")) or "application", k[2])] += n
    return [Count(key=ch, result=r, count=n) for (ch, r), n in sorted(by.items())]


def _failures(hours: list[tuple[Key, int]]) -> list[Count]:
    by: Counter[str] = Counter()
    for k, n in hours:
        if k[1] == DECISION and k[2] != "accepted":
            by[k[3] or "other"] += n
    return [Count(key=r, count=n) for r, n in by.most_common()]


def _push_times(buckets: list[int], times: list[float]) -> PushTimes:
    labels = [f"{lo}-{hi} s" for lo, hi in zip((0, *PUSH_BUCKETS), PUSH_BUCKETS, strict=False)]
    labels.append(f"over {PUSH_BUCKETS[-1]} s")

    def at(q: float) -> float | None:
        return round(times[min(len(times) - 1, int(q * len(times)))], 1) if times else None

    return PushTimes(
        approved=int(sum(buckets)),
        median=at(0.5),
        p90=at(0.9),
        buckets=[Count(key=label, count=int(n)) for label, n in zip(labels, buckets, strict=True)],
    )


class ReportFolder:
    """Folds the audit log's new rows once a minute in a thread of its own, so a report seldom
    waits for more than a minute's rows — once a report has been asked for (folding costs a
    few microseconds of the node's CPU per audit row: only where a console reads reports)."""

    def __init__(self, reports: Reports, every: float = FOLD_EVERY) -> None:
        self.reports = reports
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="openmfa-reports", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.reports.asked.wait(1.0):
            if self._stop.is_set():
                return
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
