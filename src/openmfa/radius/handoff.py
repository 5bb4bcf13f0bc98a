"""The RADIUS socket outlives a restart: no request is lost while a node's release is switched.

RADIUS runs over UDP: a datagram that reaches a port nobody has open is gone, and the gateway
(a NAS, a VPN concentrator) notices only when its timeout runs out — seconds, then it retries
or moves to its next server. So the port is never closed while a node restarts in place
(``openmfa upgrade``/``rollback``): before stopping the node, the upgrader asks it for its RADIUS
socket (``take``; the node hands a duplicate of the descriptor over a local socket, by
``SCM_RIGHTS``), holds it while no node runs — requests that arrive meanwhile wait in the
kernel's queue — and passes it to the new process (``OPENMFA_RADIUS_FD``), which answers them
first. The old node keeps answering until it stops reading; nothing in between is dropped.
(HAProxy's seamless reload does the same for its listeners: ``expose-fd listeners``.)

The hand-off socket is in the abstract namespace (no file, so no path-length limit and nothing
left behind), named after the data directory, and answers only processes of the node's own
user (or root), checked with ``SO_PEERCRED``: they could read the data file anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import struct
from pathlib import Path

from ..config import parse_listen
from ..node.control import FD_ENV as FD_ENV

log = logging.getLogger("openmfa.radius")
ASK = b"radius-socket\n"
WAIT = 3.0
"""Seconds ``take`` waits for the node's answer."""


def address(data_dir: Path) -> str:
    """The hand-off socket of the node on ``data_dir`` (abstract: starts with a NUL byte)."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:32]
    return f"\0openmfa-radius-{digest}"


def inherited(listen: str) -> socket.socket | None:
    """The RADIUS socket a restart handed to this process, when it is bound where ``listen``
    says; None (and the descriptor closed) otherwise. The variable is removed either way, so
    processes this one starts do not believe it."""
    raw = os.environ.pop(FD_ENV, "")
    if not raw:
        return None
    try:
        sock = socket.socket(fileno=int(raw))
    except (ValueError, OSError) as exc:
        log.warning("%s=%s is no socket (%s); binding RADIUS afresh", FD_ENV, raw, exc)
        return None
    try:
        host, port = parse_listen(listen)
        wanted = {
            (info[4][0], info[4][1])
            for info in socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        }
        bound = sock.getsockname()[:2]
    except OSError as exc:
        sock.close()
        log.warning("the inherited RADIUS socket cannot be used (%s); binding afresh", exc)
        return None
    if sock.type != socket.SOCK_DGRAM or bound not in wanted:
        sock.close()
        log.warning(
            "the inherited RADIUS socket is bound to %s, not %s; binding afresh", bound, listen
        )
        return None
    sock.setblocking(False)
    log.info("RADIUS: went on with the socket the restart held (requests kept while switching)")
    return sock


class HandOff:
    """Gives a duplicate of this node's RADIUS socket to a local process of the same user that
    asks (``take``), while the node runs."""

    def __init__(self, data_dir: Path, radius: socket.socket) -> None:
        self.name = address(data_dir)
        self.radius = radius
        self._listener: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.name)
        except OSError as exc:  # another node on the same directory? It would not start.
            listener.close()
            log.warning("RADIUS hand-off not offered (%s): a restart will bind afresh", exc)
            return
        listener.listen(4)
        listener.setblocking(False)
        self._listener = listener
        self._task = asyncio.get_running_loop().create_task(self._serve(listener))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            self._listener.close()

    async def _serve(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            with conn:
                try:
                    await asyncio.wait_for(self._answer(loop, conn), WAIT)
                except (OSError, TimeoutError) as exc:
                    log.warning("RADIUS hand-off failed: %s", exc)

    async def _answer(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        pid, uid = _peer(conn)
        if uid not in (os.getuid(), 0):
            log.warning("RADIUS hand-off refused to pid %d: uid %d is not this node's", pid, uid)
            return
        asked = await loop.sock_recv(conn, len(ASK))
        if asked != ASK:
            return
        conn.setblocking(True)
        socket.send_fds(conn, [b"ok"], [self.radius.fileno()])
        log.warning("RADIUS socket handed to pid %d, which holds it over a restart", pid)


def take(data_dir: Path) -> socket.socket | None:
    """The RADIUS socket of the node running on ``data_dir`` (a duplicate: it stays open when
    the node stops), or None when none is offered (no node, RADIUS off, an older release)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(WAIT)
    try:
        conn.connect(address(data_dir))
        conn.sendall(ASK)
        _, fds, _, _ = socket.recv_fds(conn, 16, 1)
    except OSError:
        return None
    finally:
        conn.close()
    if not fds:
        return None
    sock = socket.socket(fileno=fds[0])
    if sock.type != socket.SOCK_DGRAM:
        sock.close()
        return None
    sock.set_inheritable(True)
    return sock


def _peer(conn: socket.socket) -> tuple[int, int]:
    """The connected process's pid and uid (``SO_PEERCRED``)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", creds)
    return int(pid), int(uid)
