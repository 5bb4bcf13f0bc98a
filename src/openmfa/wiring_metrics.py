"""The node's ``GET /metrics``: read when scraped from what the node records anyway.

- ``openmfa_authentications_total{channel, result}``: every ``authenticate`` decision this
  node made since it started, from its audit log (read incrementally, by id). The channel is
  ``radius`` (a RADIUS client), ``cli``, or the scope of the SDK key that asked: ``portal``,
  ``adapter``, ``mobile``, ``sdk`` (admin and other keys).
- ``openmfa_push_answers_total{result}``: push requests answered on the phone (approved,
  denied), from the audit log; ``openmfa_push_requests{status}``: push requests held now
  (``open``, ``approved``, ``denied``, ``expired``...).
- ``openmfa_radius_packets_total{counter}``: the RADIUS server's own counters.
- ``openmfa_farm_*``: role, position, and on the master each subordinate's lag (changes) and
  seconds since it last asked for changes; on a subordinate its own lag behind the master.
- ``openmfa_build_info``, ``openmfa_upgrade_in_progress``, ``openmfa_upgrade_step``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, literal, select

from .farm import membership
from .farm.feed import stored_reports
from .farm.follower import position
from .metrics import BuildInfo, install_journal
from .store import tables as t

if TYPE_CHECKING:
    from .wiring import NodeRuntime

_SCOPES = {"portal": "portal", "adapter": "adapter", "mobile": "mobile"}


class NodeMetrics(Collector):
    def __init__(self, node: NodeRuntime) -> None:
        self.node = node
        self.store = node.store
        self._lock = threading.Lock()
        self._auth: Counter[tuple[str, str]] = Counter()
        self._push: Counter[str] = Counter()
        with self.store.read() as conn:
            self._after = int(conn.execute(select(func.max(t.audit.c.id))).scalar() or 0)
        self._build = BuildInfo("node", install_journal())

    def _tally(self) -> None:
        """Count the audit events recorded here since the last scrape."""
        a = t.audit.c
        with self.store.read() as conn:
            rows = conn.execute(
                select(a.id, a.action, a.client, a.result)
                .where(a.id > self._after, a.node == self.store.node_name)
                .where(a.action.in_(("authenticate", "push.answer")))
                .order_by(a.id)
            ).all()
            scopes = dict(conn.execute(select(t.api_keys.c.name, t.api_keys.c.scope)).all())
            newest = conn.execute(select(func.max(a.id))).scalar()
        for _, action, client, result in rows:
            if action == "push.answer":
                self._push[result] += 1
                continue
            if client.startswith("radius:"):
                channel = "radius"
            elif client == "cli":
                channel = "cli"
            else:
                channel = _SCOPES.get(scopes.get(client, ""), "sdk")
            self._auth[(channel, result)] += 1
        self._after = max(self._after, int(newest or 0))

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            self._tally()
            auth = CounterMetricFamily(
                "openmfa_authentications",
                "Authentication decisions made by this node since it started.",
                labels=["channel", "result"],
            )
            for (channel, result), n in sorted(self._auth.items()):
                auth.add_metric([channel, result], n)
            answers = CounterMetricFamily(
                "openmfa_push_answers",
                "Push requests answered on a phone at this node since it started.",
                labels=["result"],
            )
            for result, n in sorted(self._push.items()):
                answers.add_metric([result], n)
        yield auth
        yield answers
        yield self._push_requests()
        yield from self._radius()
        yield from self._farm()
        yield from self._build.collect()

    def _push_requests(self) -> Metric:
        p = t.push_requests.c
        now = time.time()
        past = (p.expires_at < literal(now)).label("past")
        with self.store.read() as conn:
            rows = conn.execute(select(p.status, past, func.count()).group_by(p.status, past)).all()
        held: Counter[str] = Counter()
        for status, past, n in rows:
            if status == "pending":
                status = "expired" if past else "open"
            held[str(status)] += int(n)
        g = GaugeMetricFamily(
            "openmfa_push_requests", "Push requests held by this node.", labels=["status"]
        )
        for status in sorted({"open", "expired", *held}):
            g.add_metric([status], held[status])
        return g

    def _radius(self) -> Iterable[Metric]:
        radius = self.node.radius
        c = CounterMetricFamily(
            "openmfa_radius_packets",
            "The RADIUS server's counters (received, accept, reject, challenge, dropped, ...).",
            labels=["counter"],
        )
        if radius is not None:
            for name, n in sorted(radius.protocol.stats.items()):
                c.add_metric([name], n)
        yield c

    def _farm(self) -> Iterable[Metric]:
        m = membership.load(self.store)
        seq, _ = position(self.store)
        yield GaugeMetricFamily(
            "openmfa_farm_position", "The newest change record this node holds.", value=seq
        )
        role = GaugeMetricFamily(
            "openmfa_farm_role", "1 for this node's role in its farm.", labels=["role"]
        )
        role.add_metric([m.role if m is not None else "standalone"], 1)
        yield role
        lag = GaugeMetricFamily(
            "openmfa_farm_replication_lag",
            "Change records a subordinate does not hold yet (on the master: each subordinate; "
            "on a subordinate: itself).",
            labels=["node"],
        )
        contact = GaugeMetricFamily(
            "openmfa_farm_seconds_since_contact",
            "Seconds since the subordinate last asked the master for changes.",
            labels=["node"],
        )
        now = time.time()
        if m is not None and m.farm_role.feeds:
            for r in stored_reports(self.store):
                lag.add_metric([r.name], max(0, seq - r.position))
                contact.add_metric([r.name], max(0.0, now - r.contact))
        follower = self.node.farm_runtime.follower
        if follower is not None and follower.head:
            lag.add_metric([self.store.node_name], max(0, follower.head - seq))
        yield lag
        yield contact
