"""A site where OpenMFA relays MS-CHAPv2 and EAP to a real FreeRADIUS upstream and asks for a
push before it answers: the node (``openmfa serve`` with its mobile service inside), the
upstream (``freeradius_upstream``), RADIUS clients registered with ``--primary radius --mschap
yes --eap relay --push hold``, and phones (``openmfa-authenticator watch``) that answer every
request they are shown as told. Shared by tests/e2e/test_radius_eap.py and
bench/radius_relay.py."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .freeradius_upstream import Upstream, freeradius_upstream
from .helpers import AUTHENTICATOR, Phone, Server, cli, free_port, init, server
from .services import free_udp_port

NAS_SECRET = "nas-secret-relay-1"
UPSTREAM_SECRET = "upstream-secret-relay"
Decision = Literal["approve", "deny", "ignore"]


class Answering:
    """One activated device kept running as an app is (``openmfa-authenticator watch``): each
    request it is shown is answered at once with ``decision`` (``ignore``: left unanswered)."""

    def __init__(self, phone: Phone, decision: Decision = "approve") -> None:
        self.decision: Decision = decision
        self.shown: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._log = phone.state.with_suffix(".watch.log").open("w")
        env = {**os.environ, "OPENMFA_AUTHENTICATOR_STATE": str(phone.state)}
        self.proc = subprocess.Popen(
            [AUTHENTICATOR, "watch", "--wait", "30"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            with self._changed:
                if "request" in event:
                    self.shown.append(event["request"])
                    if self.decision != "ignore":
                        self.proc.stdin.write(f"{self.decision} {event['request']['id']}\n")
                        self.proc.stdin.flush()
                elif "answered" in event:
                    self.answers.append(event)
                else:
                    self.notes.append(event)
                self._changed.notify_all()

    def wait_answers(self, count: int, timeout: float) -> bool:
        """Whether ``count`` answers have been given (within ``timeout`` seconds)."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.answers) >= count, timeout)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the end of its input ends it
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


@dataclass
class RelaySite:
    base: Path
    dd: Path
    node: Server
    radius_port: int
    upstream: Upstream
    users: dict[str, str]
    nas_secret: str = NAS_SECRET
    phones: dict[str, Answering] = field(default_factory=dict)

    def answering(self, user: str, decision: Decision = "approve") -> Answering:
        """``user``'s phone (activated on first use), now answering with ``decision``."""
        if user not in self.phones:
            code = json.loads(cli(self.dd, "device", "activate", user, "--json").stdout)
            phone = Phone(self.base / "phones" / f"{user}.json")
            phone.state.parent.mkdir(exist_ok=True)
            phone.run("activate", code["url"], code["code"])
            self.phones[user] = Answering(phone, decision)
        self.phones[user].decision = decision
        return self.phones[user]

    def push_requests(self, user: str) -> list[tuple[str, str]]:
        """(client, status) of each push request the node opened for ``user``, oldest first."""
        with sqlite3.connect(self.dd / "openmfa.db") as db:
            rows = db.execute(
                "SELECT client, status FROM push_requests WHERE user_name = ? ORDER BY created_at",
                (user,),
            ).fetchall()
        return [(str(c), str(s)) for c, s in rows]


def add_relay_client(
    dd: Path, name: str, address: str, hold_seconds: float, secret: str = NAS_SECRET
) -> None:
    """A NAS at ``address`` whose MS-CHAPv2 and EAP are relayed, then a held push."""
    cli(
        dd, "radius", "client", "add", name, "--address", address, "--secret", secret,
        "--primary", "radius", "--mschap", "yes", "--eap", "relay",
        "--push", "hold", "--hold-seconds", f"{hold_seconds:g}",
    )  # fmt: skip


@contextmanager
def relay_site(
    base: Path,
    users: dict[str, str],
    *,
    hold_seconds: float = 20.0,
    clients: dict[str, float] | None = None,
    upstream_reply: dict[str, str] | None = None,
    upstream_threads: int = 4,
) -> Iterator[RelaySite]:
    """The site: ``users`` (name → the password the upstream holds) exist in both; the NAS at
    127.0.0.1 holds pushes up to ``hold_seconds``; ``clients``: more NASes (address →
    their hold), named after their address."""
    base.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        upstream = stack.enter_context(
            freeradius_upstream(
                base / "upstream",
                users,
                UPSTREAM_SECRET,
                upstream_threads,
                reply=upstream_reply,
            )
        )
        dd = base / "node"
        dd.mkdir(exist_ok=True)
        port, udp = free_port(), free_udp_port()
        (dd / "server.toml").write_text(
            f'[mobile]\nenabled = true\npublic_url = "http://127.0.0.1:{port}/mobile"\n'
            "min_gap_seconds = 0.0\nrequest_seconds = 60\n"
            f'\n[radius_upstream]\naddress = "127.0.0.1:{upstream.port}"\n'
            f'secret = "{UPSTREAM_SECRET}"\ntimeout_seconds = 3\n'
        )
        init(dd)
        add_relay_client(dd, "nas", "127.0.0.1/32", hold_seconds)
        for address, hold in (clients or {}).items():
            add_relay_client(dd, "nas-" + address.replace(".", "-"), f"{address}/32", hold)
        for user in users:
            cli(dd, "user", "add", user)
        node = stack.enter_context(server(dd, port=port, radius=f"127.0.0.1:{udp}"))
        site = RelaySite(base, dd, node, udp, upstream, users)
        try:
            yield site
        finally:
            for phone in site.phones.values():
                phone.close()
