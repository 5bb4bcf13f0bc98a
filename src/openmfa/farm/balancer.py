"""Load balancers the rolling upgrade takes nodes out of and puts back.

- ``none``: RADIUS clients (and gateways) list several servers and fail over on a timeout;
  there is nothing to tell.
- ``haproxy``: the runtime API on HAProxy's admin socket (``stats socket ... level admin``):
  ``set server BACKEND/NODE state drain|maint|ready``; in-flight sessions, each server's
  health-check status and effective weight from ``show stat``. The HAProxy server names are
  the nodes' names.
"""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import BalancerError


@dataclass(frozen=True)
class ServerState:
    """One server of the backend as the balancer sees it."""

    status: str
    """HAProxy's words: ``UP``, ``DOWN``, ``DRAIN``, ``MAINT``, ``UP 1/3`` (going down)..."""
    weight: int
    """The effective weight: 0 takes no new traffic."""

    @property
    def serving(self) -> bool:
        """Up by its health checks and taking new traffic."""
        return self.status.startswith("UP") and self.weight > 0


class Balancer(Protocol):
    def drain(self, node: str) -> None:
        """No new sessions; a session kept on ``node`` (a persistence cookie) still goes there."""
        ...

    def maint(self, node: str) -> None:
        """Nothing at all goes to ``node`` any more: a session kept there goes to another
        server (before the server stops, so no request meets it stopping)."""
        ...

    def ready(self, node: str) -> None: ...

    def in_flight(self, node: str) -> int | None:
        """Sessions still open to ``node`` (None: the balancer cannot tell)."""
        ...

    def servers(self) -> dict[str, ServerState] | None:
        """Every server of the backend (None: the balancer cannot tell)."""
        ...


class NoBalancer:
    def drain(self, node: str) -> None:
        return None

    def maint(self, node: str) -> None:
        return None

    def ready(self, node: str) -> None:
        return None

    def in_flight(self, node: str) -> int | None:
        return None

    def servers(self) -> dict[str, ServerState] | None:
        return None


class HAProxy:
    def __init__(self, admin_socket: Path, backend: str) -> None:
        self.admin_socket = admin_socket
        self.backend = backend

    def command(self, text: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(str(self.admin_socket))
                s.sendall(text.encode() + b"\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise BalancerError(
                f"HAProxy's admin socket {self.admin_socket} does not answer ({exc}); check "
                "`stats socket ... level admin` in haproxy.cfg"
            ) from None
        return b"".join(chunks).decode(errors="replace")

    def _state(self, node: str, state: str) -> None:
        out = self.command(f"set server {self.backend}/{node} state {state}").strip()
        if out:  # HAProxy answers nothing on success
            raise BalancerError(f"HAProxy refused `{state}` for {self.backend}/{node}: {out}")

    def drain(self, node: str) -> None:
        self._state(node, "drain")

    def maint(self, node: str) -> None:
        self._state(node, "maint")

    def ready(self, node: str) -> None:
        self._state(node, "ready")

    def _rows(self) -> list[dict[str, str]]:
        text = self.command("show stat").lstrip("# ")
        return [
            row
            for row in csv.DictReader(io.StringIO(text))
            if row.get("pxname") == self.backend
            and row.get("svname") not in ("FRONTEND", "BACKEND")
        ]

    def in_flight(self, node: str) -> int | None:
        for row in self._rows():
            if row.get("svname") == node:
                return int(row.get("scur") or 0)
        raise BalancerError(f"HAProxy has no server {self.backend}/{node}")

    def servers(self) -> dict[str, ServerState] | None:
        found = {
            row["svname"]: ServerState(row.get("status") or "?", int(row.get("weight") or 0))
            for row in self._rows()
        }
        if not found:
            raise BalancerError(
                f"HAProxy has no backend {self.backend!r} with servers; check --haproxy-backend"
            )
        return found
