"""The security notices in the node's ``GET /metrics`` (only when ``[notify]`` sends any):

- ``openmfa_notify_queued{channel}``: notices waiting (person, security, webhook);
- ``openmfa_notify_oldest_queued_seconds{channel}``: how long the oldest has waited;
- ``openmfa_notify_sent_total{channel}``, ``openmfa_notify_failed_attempts_total{channel}``
  (each try that found the other end down), ``openmfa_notify_undeliverable_total{channel}``
  (refused for good, like a person with no address), since the node started.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .notify import Notifier


class NotifyMetrics(Collector):
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def collect(self) -> Iterable[Metric]:
        if not self.notifier.enabled:
            return
        label = ["channel"]
        queued = GaugeMetricFamily(
            "openmfa_notify_queued", "Notices waiting to be sent", labels=label
        )
        oldest = GaugeMetricFamily(
            "openmfa_notify_oldest_queued_seconds",
            "Age of the oldest notice waiting to be sent",
            labels=label,
        )
        for name, (count, age) in self.notifier.queued().items():
            queued.add_metric([name], count)
            oldest.add_metric([name], age)
        yield queued
        yield oldest
        for metric, doc, attr in (
            ("openmfa_notify_sent", "Notices delivered", "sent"),
            (
                "openmfa_notify_failed_attempts",
                "Tries that found the other end down",
                "failed_attempts",
            ),
            ("openmfa_notify_undeliverable", "Notices refused for good", "undeliverable"),
        ):
            family = CounterMetricFamily(metric, doc, labels=label)
            for ch in self.notifier.channels:
                family.add_metric([ch.name], getattr(ch, attr))
            yield family
