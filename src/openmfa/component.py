"""A portal, mobile-service or adapter host's side of the farm's inventory and upgrades.

Inside ``openmfa portal serve`` and ``openmfa mobile serve`` (when their config names them), and
as ``openmfa adapter agent`` on an adapter host (``adapter_agent``: there the order's command is
the agent's child, which it waits for), a thread reports to the nodes through the SDK every few
seconds: its name, kind, URL, host, release, the SDK versions it speaks, its health, whether an
upgrade runs here and what ``openmfa rollback`` would go back to. The answer may hold an order
of the farm's orchestrator (``openmfa farm upgrade``/``farm rollback`` on the master): the
thread then starts ``openmfa upgrade --from-bundle B`` (or ``openmfa rollback``) on this host,
detached, the way the node's farm agent does — that command stops this very process and starts
the new release where it ran. Each order is started once (its id is kept beside the config), so
a failed upgrade that rolled itself back is reported, not retried; the orchestrator sees the
release the component comes back with and stops there.

The component asks and the nodes answer: a host in a DMZ opens no port for the farm.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .errors import OpenMfaError
from .sdk.client import SdkClient
from .sdk.models import SDK_VERSIONS, ComponentOrder, ComponentReply, ComponentReport

log = logging.getLogger("openmfa.component")

Launch = Callable[[ComponentOrder], "subprocess.Popen[bytes] | None"]
"""Starts the order's command on this host, detached (``cli.common.launch_order``)."""
Local = Callable[[], tuple[bool, str]]
"""(an upgrade runs on this host, the release ``openmfa rollback`` goes back to)."""


@dataclass(frozen=True)
class Identity:
    name: str
    kind: str
    url: str


class Reporter:
    def __init__(
        self,
        me: Identity,
        nodes: list[str],
        api_key: str,
        *,
        state_file: Path,
        local: Local,
        launch: Launch | None = None,
        health: Callable[[], str] = lambda: "ok",
        busy: Callable[[], int] = lambda: 0,
        verify: object = True,
        done: Callable[[], None] | None = None,
    ) -> None:
        """``launch``: starts an order's command (None: this reporter only reports, as
        ``farm join-component`` does). ``done``: called when the order's command ends well
        while this process still runs (an adapter host's agent then starts its new release in
        its own place)."""
        self.me = me
        self.sdk = SdkClient(nodes, api_key, timeout=10.0, verify=verify)  # type: ignore[arg-type]
        self.state_file = state_file
        self.launch = launch
        self.local = local
        self.health = health
        self.busy = busy
        self.done = done
        self.problem = ""
        self.failed = ""
        """Why the last order could not run here (reported as this host's health)."""
        self.boot = secrets.token_hex(8)
        self._child: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def started(self) -> list[str]:
        try:
            ids = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return []
        return [str(i) for i in ids][-16:] if isinstance(ids, list) else []

    def _mark(self, order_id: str) -> None:
        ids = [*self.started(), order_id][-16:]
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(json.dumps(ids))
        os.replace(tmp, self.state_file)

    def once(self) -> float:
        """One report, and the order it brings started; the seconds until the next one."""
        reply, started, upgrading = self.report()
        order = reply.order
        if (
            order is not None
            and order.id not in started
            and order.target != __version__
            and not upgrading
        ):
            self.start_order(order)
        return max(1.0, min(reply.every, 60.0))

    def report(self) -> tuple[ComponentReply, list[str], bool]:
        """Say what runs here; (the answer, the orders started here, an upgrade runs here)."""
        self._child_ended()
        upgrading, rollback_to = self.local()
        upgrading = upgrading or self._child is not None  # the order's command still runs
        started = self.started()
        report = ComponentReport(
            name=self.me.name,
            kind=self.me.kind,  # type: ignore[arg-type]
            url=self.me.url,
            host=socket.gethostname()[:255],
            release=__version__,
            sdk_versions=list(SDK_VERSIONS),
            health=(self.failed or self.health())[:500],
            upgrading=upgrading,
            rollback_to=rollback_to,
            boot=self.boot,
            busy=self.busy(),
            started=started,
        )
        return self.sdk.component_report(report), started, upgrading

    def _child_ended(self) -> None:
        if self._child is None or (code := self._child.poll()) is None:
            return
        self._child = None
        if code != 0:
            self.failed = (
                f"the farm's order failed here before it stopped this service (exit {code}); "
                "see farm-*.log in the installation's root"
            )
        elif self.done is not None:
            self.done()

    def start_order(self, order: ComponentOrder) -> None:
        if self.launch is None:
            return
        self._mark(order.id)  # first: whatever happens next, it is started once
        if order.action == "upgrade" and not Path(order.bundle).exists():
            self.failed = f"no bundle at {order.bundle} on this host; copy it there first"
            return
        log.warning("the farm asks for %s to %s: starting it", order.action, order.target)
        try:
            self._child = self.launch(order)
            self.failed = ""
        except (OpenMfaError, OSError) as exc:
            text = exc.message if isinstance(exc, OpenMfaError) else str(exc)
            self.failed = f"cannot start the farm's {order.action} here: {text}"
            log.error("%s", self.failed)

    def run(self) -> None:
        wait = 0.0
        while not self._stop.wait(wait):
            try:
                wait = self.once()
                if self.problem:
                    log.info("reporting to the nodes again")
                self.problem = ""
            except (OpenMfaError, OSError) as exc:
                text = exc.message if isinstance(exc, OpenMfaError) else str(exc)
                if text != self.problem:
                    log.warning("cannot report to the nodes: %s", text)
                self.problem = text
                wait = 10.0

    def halt(self) -> None:
        """Make ``run`` return (from a signal handler too)."""
        self._stop.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="component-report", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.sdk.close()
