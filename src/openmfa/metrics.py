"""``GET /metrics`` for every part (Prometheus text format, ``prometheus-client``).

Each server builds its own registry (several apps share one process in the tests). The node
counts from what it already records — the audit log, the RADIUS server's counters, the change
feed — when it is scraped, so the authentication path pays nothing for it. The portal and the
mobile service count requests by endpoint and status with :class:`RequestCounter`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__

UPGRADE_STEPS = ("checks", "backup", "install", "migrate", "config", "themes", "switch", "verify")
"""The steps of ``openmfa upgrade`` (its journal), in order: ``openmfa_upgrade_step``."""


def endpoint(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class BuildInfo(Collector):
    """``openmfa_build_info{part, release}`` and where an upgrade of this host stands."""

    def __init__(self, part: str, journal: Path | None = None) -> None:
        self.part = part
        self.journal = journal

    def collect(self) -> Iterable[GaugeMetricFamily | InfoMetricFamily]:
        yield InfoMetricFamily(
            "openmfa_build",
            "The release this process runs.",
            {"part": self.part, "release": __version__},
        )
        yield from upgrade_metrics(self.journal)


def upgrade_metrics(journal: Path | None) -> Iterable[GaugeMetricFamily]:
    """``openmfa_upgrade_in_progress`` (1 while ``openmfa upgrade`` runs on this host) and
    ``openmfa_upgrade_step`` (how many of its steps are done, 0 to 8)."""
    data: dict[str, object] = {}
    if journal is not None:
        try:
            data = json.loads(journal.read_text())
        except (OSError, ValueError):
            data = {}
    done = data.get("done", [])
    steps = len([s for s in done if s in UPGRADE_STEPS]) if isinstance(done, list) else 0
    yield GaugeMetricFamily(
        "openmfa_upgrade_in_progress",
        "1 while an upgrade of this host is under way.",
        value=bool(data),
    )
    yield GaugeMetricFamily(
        "openmfa_upgrade_step",
        f"Steps of the upgrade under way that are done (of {len(UPGRADE_STEPS)}).",
        value=steps,
    )


class RequestCounter:
    """ASGI middleware: ``openmfa_http_requests_total{part, endpoint, status}`` (the endpoint's
    function name as routing matched it; ``none`` for a path no route takes)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, part: str) -> None:
        self.app = app
        self.part = part
        self.counter = Counter(
            "openmfa_http_requests",
            "HTTP requests answered, by endpoint and status.",
            ["part", "endpoint", "status"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            name = scope.get("openmfa.endpoint") or getattr(
                scope.get("endpoint"), "__name__", "none"
            )
            self.counter.labels(self.part, name, str(status[0])).inc()


def seconds_since(at: float) -> float:
    return max(0.0, time.time() - at) if at else -1.0


def install_journal() -> Path | None:
    """The upgrade journal of this host's installation (from its install record), if any."""
    from .errors import OpenMfaError
    from .install.journal import JOURNAL
    from .install.record import InstallRecord, record_path

    try:
        return InstallRecord.load(record_path(None)).root_path / JOURNAL
    except (OpenMfaError, OSError, ValueError):
        return None
